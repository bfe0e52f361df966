"""Preemption of a multi-process run (a pod slice, here two CPU processes with a local
coordinator): every process stops and saves at the same step, whichever process gets the
signal and when; a lost process ends the other within a bounded time; the rerun of the
same command finishes with the same loss curve and evaluation as an uninterrupted run."""

import json
import os
import random
import signal
import socket
import time

import pytest

from conftest import start, xla_flags

pytestmark = pytest.mark.slow  # end-to-end runs of the real command

EPOCH = 8  # steps per epoch of the smoke preset
# Only the numbers compared are computed: no validation-quality pass (so the loss-based
# stopping rule, which needs none), two evaluation tasks. The grace period is long enough
# for a save on a loaded machine: when it runs out, process 0 exits without a save, as it
# should, and process 1 then dies with the coordinator.
ARGS = ("--config=configs/triplet_dis.py:smoke", "--config.train.max_epochs=4", "--config.train.log_every_steps=1",
        "--config.train.checkpoint_every_steps=5", "--config.train.validation_quality=false",
        "--config.train.select_by=loss", "--config.train.preemption_grace_s=120",
        "--config.eval.tasks=('tagging','track_triplets')", "--heartbeat_timeout_s=10")


def _port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


class Run:
  """The two processes of one launch of `main`; their output goes to files."""

  def __init__(self, workdir, data_dir, logs):
    port = _port()
    self.workdir = workdir
    self.logs = [logs / f"{len(list(logs.iterdir()))}-{i}.log" for i in range(2)]
    self.procs = [start("-m", "musicrep_jax.main", *ARGS, f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                        f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}",
                        env={"XLA_FLAGS": xla_flags()}, out=log, err="stdout") for i, log in enumerate(self.logs)]

  def lines(self):
    """The complete lines of metrics.jsonl (process 0 writes it)."""
    try:
      with open(self.workdir / "metrics.jsonl") as f:
        return [json.loads(l) for l in f if l.endswith("\n")]
    except FileNotFoundError:
      return []

  def step(self):
    return max([l["step"] for l in self.lines()] or [0])

  def wait_for(self, ready, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if ready():
        return
      if any(p.poll() is not None for p in self.procs):
        break
      time.sleep(0.005)
    raise AssertionError(f"the condition was not reached; outputs:\n{self.output(0)[-3000:]}\n{self.output(1)[-3000:]}")

  def finish(self, timeout=600):
    for p in self.procs:
      p.wait(timeout=timeout)
    return [p.returncode for p in self.procs]

  def output(self, i):
    return self.logs[i].read_text()


def _checkpoints(workdir):
  return sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())


def _curve(workdir):
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  return ([(l["step"], l["loss"]) for l in lines if "loss" in l],
          [(l["epoch"], l["val_loss"]) for l in lines if "val_loss" in l])


def _preempted(run, signalled):
  """Both processes exited with the preemption status, having saved one and the same step."""
  codes = run.finish()
  assert codes == [143, 143], (codes, run.output(0)[-3000:], run.output(1)[-3000:])
  saved = int(run.output(0).split("SIGTERM: saved step ")[1].split(";")[0])
  assert _checkpoints(run.workdir)[-1] == saved
  assert saved > signalled  # the step in flight when the notice came, or a later one all agree on
  return saved


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
  workdir, logs = tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("reference_logs")
  run = Run(workdir, data_dir, logs)
  assert run.finish() == [0, 0], run.output(0)[-3000:]
  assert "with 2 cpu device(s)" in run.output(0) and "eval: ROC-AUC" in run.output(0), run.output(0)[-3000:]
  ours = [l for l in run.output(1).splitlines() if l.startswith(("training", "epoch", "eval"))]
  assert not ours, ours  # process 1 logs and writes nothing
  return workdir


def test_preemptions_and_a_lost_process_then_the_rerun_matches_an_uninterrupted_run(reference, data_dir, tmp_path):
  rng = random.Random(7)
  workdir, logs = tmp_path / "run", tmp_path / "logs"
  logs.mkdir()

  # 1. SIGTERM to process 1 (not the coordinator), at a random step of the first epoch,
  # then to process 0 a step later: the first notice alone stops both, at one step, and
  # the second changes nothing.
  run = Run(workdir, data_dir, logs)
  first = rng.randint(2, EPOCH - 3)
  run.wait_for(lambda: run.step() >= first)
  run.procs[1].send_signal(signal.SIGTERM)
  run.wait_for(lambda: run.step() >= first + 1)
  run.procs[0].send_signal(signal.SIGTERM)
  saved = _preempted(run, first)

  # 2. SIGTERM to process 0 during a validation: after an epoch's last step, before its val loss.
  run = Run(workdir, data_dir, logs)
  run.wait_for(lambda: (lambda ls: bool(ls) and "loss" in ls[-1] and ls[-1]["step"] % EPOCH == 0
                        and ls[-1]["step"] > saved)(run.lines()))
  end_of_epoch = run.step()
  run.procs[0].send_signal(signal.SIGTERM)
  saved = _preempted(run, end_of_epoch)
  assert "resuming from step" in run.output(0)

  # 3. SIGKILL of process 1 (a lost host): process 0 ends within a bounded time, saying so.
  run = Run(workdir, data_dir, logs)
  run.wait_for(lambda: run.step() >= saved + 2)
  run.procs[1].kill()
  killed = time.time()
  codes = run.finish(timeout=120)
  assert codes[0] != 0 and time.time() - killed < 60, codes  # --heartbeat_timeout_s=10
  last = run.output(0).strip().splitlines()[-1]
  assert (last.startswith("error: process 0 stopped") and "restart every process" in last) or \
      "another task died" in run.output(0), run.output(0)[-3000:]

  # 4. The rerun resumes from the newest complete checkpoint and finishes like the reference.
  run = Run(workdir, data_dir, logs)
  assert run.finish() == [0, 0], run.output(0)[-3000:]
  assert "resuming from step" in run.output(0)
  (got_steps, got_val), (want_steps, want_val) = _curve(workdir), _curve(reference)
  assert [s for s, _ in got_steps] == [s for s, _ in want_steps]
  assert [l for _, l in got_steps] == pytest.approx([l for _, l in want_steps], rel=1e-5)
  assert [e for e, _ in got_val] == [e for e, _ in want_val]
  assert [v for _, v in got_val] == pytest.approx([v for _, v in want_val], rel=1e-5)
  ref_eval, got_eval = json.load(open(reference / "eval.json")), json.load(open(workdir / "eval.json"))
  for key in ("roc_auc", "pr_auc", "track_triplet_acc"):
    assert got_eval[key] == pytest.approx(ref_eval[key], abs=1e-5), key
