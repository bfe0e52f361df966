"""Warm starts for the tests' commands: `python -m <module> args` without paying the imports.

Most end-to-end cases are short commands (a refusal, a query, a one-epoch run) whose
time is mostly Python importing TensorFlow, JAX, Flax and Orbax: about 5 s each on a
2-core CPU, over a hundred times a suite. `Server` is one helper process per test
worker that sets the commands' environment (musicrep_jax.cli_environment()) and imports
those libraries once, without starting a JAX backend or a TensorFlow session; then, for
each command, it forks. The child is a real process running the real command
(`runpy.run_module(module, run_name="__main__")`, as `python -m` does), with its own
argv, working folder, stdout and stderr files and exit status; it only starts with the
libraries already imported. No project module is imported before the fork, so each
command defines its absl flags and reads its config afresh.

What a warm start cannot do, `run` leaves to a cold `python -m` (conftest.run_python):
commands with environment variables of their own (those read at import time would be
ignored), and any command when MUSICREP_JAX_COLD_TESTS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = ("numpy", "scipy", "sklearn", "soundfile", "tensorflow", "tensorflow_datasets", "jax", "jax.numpy", "flax.linen",
           "optax", "orbax.checkpoint", "ml_collections", "absl.app", "absl.flags", "absl.logging", "tqdm")


class Server:
  """A forking command server (one per test worker, started on first use)."""

  def __init__(self, cwd: str):
    self.cwd = cwd
    self.lock = threading.Lock()
    self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "warm.py")], cwd=cwd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if self.proc.stdout.readline().strip() != "ready":
      raise RuntimeError("the warm command server did not start")

  def run(self, module: str, args, timeout: float = 600) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp, self.lock:
      out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
      request = {"module": module, "args": [str(a) for a in args], "cwd": self.cwd, "out": out, "err": err,
                 "timeout": timeout}
      self.proc.stdin.write(json.dumps(request) + "\n")
      self.proc.stdin.flush()
      status = int(self.proc.stdout.readline())
      with open(out, errors="replace") as f, open(err, errors="replace") as g:
        return subprocess.CompletedProcess([sys.executable, "-m", module, *args], status, f.read(), g.read())

  def close(self) -> None:
    self.proc.stdin.close()
    self.proc.wait(timeout=30)


def _child(request: dict) -> None:
  """In the forked child: become `python -m module args` and run it."""
  import runpy  # pylint: disable=import-outside-toplevel
  os.setpgid(0, 0)  # its own process group: a timeout ends the command and anything it started
  os.chdir(request["cwd"])
  for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                          (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
    target = os.open(path, flags, 0o600)
    os.dup2(target, fd)
    os.close(target)
  sys.argv = [request["module"], *request["args"]]
  sys.path[:] = [request["cwd"]] + [p for p in sys.path if p not in (HERE, request["cwd"])]  # as `python -m` has it
  status = 0
  try:
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
  except SystemExit as e:
    status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if not isinstance(e.code, (int, type(None))):
      print(e.code, file=sys.stderr)
  except BaseException:  # pylint: disable=broad-except  # as the interpreter reports an uncaught exception
    import traceback  # pylint: disable=import-outside-toplevel
    traceback.print_exc()
    status = 1
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def serve() -> None:
  """The server's loop: one JSON request per line in, one exit status per line out."""
  import importlib  # pylint: disable=import-outside-toplevel
  import signal  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, os.path.dirname(HERE))
  import musicrep_jax  # pylint: disable=import-outside-toplevel
  musicrep_jax.cli_environment()
  for name in PRELOAD:
    importlib.import_module(name)
  reply = sys.stdout
  print("ready", file=reply, flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
      _child(request)
    deadline = time.monotonic() + request["timeout"]
    while True:  # no thread in the server: every fork is of a single-threaded Python
      done, raw = os.waitpid(pid, os.WNOHANG)
      if done:
        break
      if time.monotonic() > deadline:
        os.killpg(pid, signal.SIGKILL)
        done, raw = os.waitpid(pid, 0)
        break
      time.sleep(0.02)
    print(os.waitstatus_to_exitcode(raw), file=reply, flush=True)  # -N after signal N, as subprocess has it


if __name__ == "__main__":
  serve()
