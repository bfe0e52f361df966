"""Warm starts for the tests' commands: `python -m <module> args` without paying the imports.

Most end-to-end cases are short commands (a refusal, a query, a one-epoch run, one
process of a two-process run) whose time is mostly Python importing TensorFlow, JAX,
Flax and Orbax: about 5 s each on a 2-core CPU, over a hundred times a suite. `Server` is
one helper process per test worker that sets the commands' environment
(musicrep_jax.cli_environment()) and imports those libraries once, without starting a JAX
backend or a TensorFlow session; then, for each command, it forks. The child is a real
process running the real command (`runpy.run_module(module, run_name="__main__")`, as
`python -m` does; or a script, or `-c` code), with its own argv, working folder, stdout
and stderr files, process group, signals and exit status; it only starts with the
libraries already imported. No project module is imported before the fork, so each
command defines its absl flags and reads its config afresh. Commands run side by side
(the two processes of a pod slice) and can be signalled while they run: `start` returns
a `Proc`, the part of subprocess.Popen the tests use.

A child can also get environment variables and a file-size limit (a full disk), applied
after the fork and before the command's code runs. Only variables read after the fork can
be honoured: `LATE_ENV` lists them, and `can_start` says whether an environment
qualifies. Any other one needs a cold `python`, as do commands run as another user (the
interpreter's own files may be out of that user's reach, and a warm child has imported
them as this one), and all commands when MUSICREP_JAX_COLD_TESTS=1 (see conftest.start).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = ("numpy", "scipy", "sklearn", "soundfile", "tensorflow", "tensorflow_datasets", "jax", "jax.numpy", "flax.linen",
           "optax", "orbax.checkpoint", "ml_collections", "absl.app", "absl.flags", "absl.logging", "tqdm")
# Read when the backend starts or when a command reads them, never at the preloaded imports.
LATE_ENV = ("XLA_FLAGS", "PYTHONPATH", "HOME", "MPLCONFIGDIR")
# Read by `import jax` (done before the fork): the child sets them through jax.config.
JAX_ENV = {"JAX_ENABLE_COMPILATION_CACHE": ("jax_enable_compilation_cache", lambda v: v.lower() in ("1", "true")),
           "MUSICREP_JAX_CACHE": ("jax_compilation_cache_dir", str)}  # (cli_environment passes it to JAX's)


def can_start(env: dict | None) -> bool:
  """Whether a command with these environment variables of its own can start warm."""
  return all(k in LATE_ENV or k in JAX_ENV or k.startswith("MUSICREP_JAX_") for k in env or {})


class Proc:
  """A command the server started: pid, poll, wait, send_signal, kill, communicate."""

  def __init__(self, args, out: str, err: str):
    self.args, self.out, self.err = args, out, err
    self.pid, self.returncode = None, None
    self._started, self._done = threading.Event(), threading.Event()

  def poll(self):
    return self.returncode

  def wait(self, timeout=None):
    if not self._done.wait(timeout):
      raise subprocess.TimeoutExpired(self.args, timeout)
    return self.returncode

  def send_signal(self, signum):
    if self.returncode is None:
      os.kill(self.pid, signum)

  def kill(self):
    self.send_signal(signal.SIGKILL)

  def output(self) -> tuple[str, str]:
    """stdout and stderr so far."""
    with open(self.out, errors="replace") as f, open(self.err, errors="replace") as g:
      return f.read(), g.read()

  def communicate(self, timeout=None) -> tuple[str, str]:
    self.wait(timeout)
    return self.output()


class Server:
  """A forking command server (one per test worker, started on first use)."""

  def __init__(self, cwd: str):
    self.cwd = cwd
    self.lock = threading.Lock()
    self.procs: dict[int, Proc] = {}
    self.cpu_s = 0.0  # CPU seconds of every command that has ended
    self.tmp = tempfile.mkdtemp(prefix="warm-")
    self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "warm.py")], cwd=cwd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if self.proc.stdout.readline().strip() != "ready":
      raise RuntimeError("the warm command server did not start")
    threading.Thread(target=self._replies, daemon=True).start()

  def _replies(self):
    for line in self.proc.stdout:
      reply = json.loads(line)
      proc = self.procs[reply["id"]]
      if "pid" in reply:
        proc.pid = reply["pid"]
        proc._started.set()  # pylint: disable=protected-access
      else:
        proc.returncode = reply["exit"]
        self.cpu_s += reply["cpu_s"]
        proc._done.set()  # pylint: disable=protected-access

  def start(self, argv, *, env=None, out=None, err=None, fsize=None, timeout: float = 600) -> Proc:
    """Starts `python argv...` (argv: ["-m", module, ...], ["-c", code, ...] or [script, ...]).
    out/err: files for its output (default: new files here); err="stdout" merges them."""
    with self.lock:
      rid = len(self.procs)
      out = str(out or os.path.join(self.tmp, f"{rid}.out"))
      err = out if err == "stdout" else str(err or os.path.join(self.tmp, f"{rid}.err"))
      proc = self.procs[rid] = Proc([sys.executable, *argv], out, err)
      request = {"id": rid, "argv": [str(a) for a in argv], "cwd": self.cwd, "out": out, "err": err,
                 "env": env or {}, "fsize": fsize, "timeout": timeout}
      self.proc.stdin.write(json.dumps(request) + "\n")
      self.proc.stdin.flush()
    if not proc._started.wait(60):  # pylint: disable=protected-access
      raise RuntimeError("the warm command server did not start the command")
    return proc

  def close(self) -> None:
    import shutil  # pylint: disable=import-outside-toplevel
    self.proc.stdin.close()
    self.proc.wait(timeout=30)
    shutil.rmtree(self.tmp, ignore_errors=True)


def _child(request: dict) -> None:
  """In the forked child: become `python argv...` and run it; never returns."""
  import runpy  # pylint: disable=import-outside-toplevel
  os.setpgid(0, 0)  # its own process group: a timeout ends the command and anything it started
  os.chdir(request["cwd"])
  files = [(0, os.devnull, os.O_RDONLY), (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)]
  if request["err"] != request["out"]:
    files.append((2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
  for fd, path, flags in files:
    target = os.open(path, flags, 0o600)
    os.dup2(target, fd)
    os.close(target)
  if request["err"] == request["out"]:
    os.dup2(1, 2)
  os.environ.update(request["env"])
  if set(request["env"]) & set(JAX_ENV):
    import jax  # pylint: disable=import-outside-toplevel
    for key, (name, parse) in JAX_ENV.items():
      if key in request["env"]:
        jax.config.update(name, parse(request["env"][key]))
    if "MUSICREP_JAX_CACHE" in request["env"]:  # as cli_environment() would have set it
      os.environ["JAX_COMPILATION_CACHE_DIR"] = request["env"]["MUSICREP_JAX_CACHE"]
  if request["fsize"] is not None:  # writes past it fail with EFBIG instead of killing the process
    import resource  # pylint: disable=import-outside-toplevel
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], request["fsize"]))
  argv = request["argv"]
  extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
  base = [p for p in sys.path if p not in (HERE, request["cwd"], *extra)]
  # The command's end is the interpreter's own: SystemExit, KeyboardInterrupt or any other
  # exception leaves this function and serve(), so Python reports it, joins the threads,
  # runs the atexit handlers (jax.distributed's shutdown among them) and exits as a fresh
  # `python` would.
  if argv[0] == "-m":
    sys.argv = [argv[1], *argv[2:]]
    sys.path[:] = [request["cwd"], *extra, *base]  # as `python -m` has it
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
  elif argv[0] == "-c":
    sys.argv = ["-c", *argv[2:]]
    sys.path[:] = ["", *extra, *base]
    exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})  # pylint: disable=exec-used
  else:
    sys.argv = list(argv)
    sys.path[:] = [os.path.dirname(os.path.abspath(argv[0])), *extra, *base]
    runpy.run_path(argv[0], run_name="__main__")
  sys.exit(0)


def serve() -> None:
  """The server's loop: JSON requests in, one line per started and per ended command out.
  It has no thread: every fork is of a single-threaded Python."""
  import importlib  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, os.path.dirname(HERE))
  import musicrep_jax  # pylint: disable=import-outside-toplevel
  musicrep_jax.cli_environment()
  for name in PRELOAD:
    importlib.import_module(name)
  reply = sys.stdout
  print("ready", file=reply, flush=True)
  children: dict[int, tuple[int, float]] = {}  # pid: (request id, deadline)
  selector = selectors.DefaultSelector()
  selector.register(0, selectors.EVENT_READ)
  pending, open_ = b"", True
  while open_ or children:
    if open_ and selector.select(timeout=0.02):
      data = os.read(0, 1 << 16)
      open_ = bool(data)
      pending += data
      while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
          _child(request)
        children[pid] = (request["id"], time.monotonic() + request["timeout"])
        print(json.dumps({"id": request["id"], "pid": pid}), file=reply, flush=True)
    elif not open_:
      time.sleep(0.02)
    for pid, (rid, deadline) in list(children.items()):
      done, raw, usage = os.wait4(pid, os.WNOHANG)
      if not done and time.monotonic() > deadline:
        os.killpg(pid, signal.SIGKILL)
        done, raw, usage = os.wait4(pid, 0)
      if done:
        del children[pid]
        print(json.dumps({"id": rid, "exit": os.waitstatus_to_exitcode(raw), "cpu_s": usage.ru_utime + usage.ru_stime}),
              file=reply, flush=True)


if __name__ == "__main__":
  serve()
