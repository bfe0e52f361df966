"""Run output: metrics.jsonl, TensorBoard events, and a progress line on a terminal."""

from __future__ import annotations

import json
import os
import sys
import time

from etils import epath


def path(p) -> epath.Path:
  """A run's file or folder, local (expanded, absolute) or on GCS (gs://...): every file of
  a run is read and written through etils.epath, so a workdir may be either."""
  p = str(p)
  return epath.Path(p if "://" in p else os.path.abspath(os.path.expanduser(p)))


def write_json(file, obj) -> None:
  """Writes `obj` to `file` atomically: a kill leaves the old file or the new one, never half."""
  _replace(path(file), json.dumps(obj, indent=1))


def _replace(file: epath.Path, text: str) -> None:
  """Writes a temporary file and renames it over `file` (on GCS a new object appears whole)."""
  tmp = file.parent / f"{file.name}.tmp{os.getpid()}"
  with tmp.open("w") as f:
    f.write(text)
    if hasattr(f, "fileno"):
      f.flush()
      os.fsync(f.fileno())
  tmp.replace(file)


def read_json(file):
  """The JSON in `file`, or None when it is missing or unreadable."""
  try:
    return json.loads(path(file).read_text())
  except (OSError, ValueError):
    return None


def complete_lines(file, last_step: int) -> list[str]:
  """The complete JSON lines of `file` with step <= last_step (a line cut off by a kill
  ends the list): after a resume from that step, the log reads as if the run had never
  been interrupted."""
  try:
    text = path(file).read_text()
  except FileNotFoundError:
    return []
  keep = []
  for line in text.splitlines(keepends=True):
    if not line.endswith("\n"):
      break
    if json.loads(line)["step"] <= last_step:
      keep.append(line)
  return keep


class MetricWriter:
  """JSON lines in workdir/metrics.jsonl and scalars in TensorBoard (process 0).
  `resume_step`: drop what was logged after that step (a run resumed from it redoes it).
  On a local disk each line is appended at once; an object store (gs://) cannot append,
  so there the file is rewritten whole, at most every `flush_s` seconds and at close()
  (`append=False` picks that mode anywhere)."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0, append: bool | None = None,
               flush_s: float = 30.0):
    self.enabled = enabled
    if not enabled:
      return
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    self._tf = tf
    self._file = path(workdir) / "metrics.jsonl"
    self._lines = complete_lines(self._file, resume_step)
    self._append = "://" not in str(self._file) if append is None else append
    self._flush_s, self._flushed = flush_s, 0.0
    self._flush()
    if self._append:
      self._jsonl = self._file.open("a")
    self._tb = tf.summary.create_file_writer(str(path(workdir) / "tensorboard"))

  def _flush(self) -> None:
    _replace(self._file, "".join(self._lines))
    self._flushed = time.time()

  def write(self, step: int, **scalars) -> None:
    if not self.enabled:
      return
    line = json.dumps({"step": int(step), **{k: _py(v) for k, v in scalars.items()}}) + "\n"
    if self._append:
      self._jsonl.write(line)
      self._jsonl.flush()
    else:
      self._lines.append(line)
      if time.time() - self._flushed >= self._flush_s:
        self._flush()
    with self._tb.as_default(step=int(step)):
      for k, v in scalars.items():
        if isinstance(v, (int, float)):
          self._tf.summary.scalar(k, v)
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      if self._append:
        self._jsonl.close()
      else:
        self._flush()
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


def printable(name: str) -> str:
  """A file name (or any text from the user's files) for plain-text output, which it can
  neither forge nor crash: control characters (a newline would start a fake line) as
  Python escapes (\\n, \\x1b), bytes that did not decode (Python's surrogate escapes) as
  \\xNN, and characters the output's encoding cannot show as \\u escapes. JSON output
  keeps names exactly."""
  import unicodedata  # pylint: disable=import-outside-toplevel
  out = []
  for ch in name:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name (os.fsdecode's surrogateescape)
      out.append(f"\\x{o - 0xDC00:02x}")
    elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
      out.append(ch.encode("unicode_escape").decode("ascii"))
    else:
      out.append(ch)
  text = "".join(out)
  encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
  try:
    return text.encode(encoding, "backslashreplace").decode(encoding)
  except LookupError:
    return text.encode("ascii", "backslashreplace").decode("ascii")
