"""Run output: metrics.jsonl, TensorBoard events, and a progress line on a terminal."""

from __future__ import annotations

import json
import os
import sys
import time


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically: a kill leaves the old file or the new one, never half."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def truncate_jsonl(path: str, last_step: int) -> None:
  """Keeps the complete lines of `path` with step <= last_step: after a resume from that
  step, the log reads as if the run had never been interrupted."""
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      if not line.endswith("\n"):
        break  # cut off by a kill
      if json.loads(line)["step"] <= last_step:
        keep.append(line)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.writelines(keep)
  os.replace(tmp, path)


class MetricWriter:
  """Appends JSON lines to workdir/metrics.jsonl and scalars to TensorBoard (process 0).
  `resume_step`: drop what was logged after that step (a run resumed from it redoes it)."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0):
    self.enabled = enabled
    if not enabled:
      return
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    self._tf = tf
    path = os.path.join(workdir, "metrics.jsonl")
    truncate_jsonl(path, resume_step)
    self._jsonl = open(path, "a")
    self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, **scalars) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps({"step": int(step), **{k: _py(v) for k, v in scalars.items()}}) + "\n")
    self._jsonl.flush()
    with self._tb.as_default(step=int(step)):
      for k, v in scalars.items():
        if isinstance(v, (int, float)):
          self._tf.summary.scalar(k, v)
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def _py(v):
  return v.item() if hasattr(v, "item") else v


class Progress:
  """One line updated in place on a terminal: step, loss, examples/s and an ETA.
  Silent when stderr is not a terminal (logs and CI get the epoch summaries only)."""

  def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True):
    self.total = total_steps
    self.start_step = start_step
    self.enabled = enabled and sys.stderr.isatty()
    self.start = time.time()

  def update(self, step: int, loss: float, examples_per_s: float, epoch: int) -> None:
    if not self.enabled:
      return
    done = max(step - self.start_step, 1)
    eta = (time.time() - self.start) / done * max(self.total - step, 0)
    sys.stderr.write(f"\repoch {epoch} step {step}/{self.total} loss {loss:.4f} "
                     f"{examples_per_s:.1f} ex/s ETA {eta / 60:.1f} min   ")
    sys.stderr.flush()

  def newline(self) -> None:
    if self.enabled:
      sys.stderr.write("\n")


def log(msg: str, enabled: bool = True) -> None:
  if enabled:
    print(msg, flush=True)
