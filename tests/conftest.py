"""Shared fixtures: one smoke build of synth_music for the whole session (all xdist workers)."""

import fcntl
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# librosa's numba functions cache their compiled code (cache=True), by default beside
# librosa's sources. Numba writes a function's cache files one by one, so two processes
# compiling the same function at once can leave a mixed pair, and loading it is a
# segmentation fault (numba/numba#10128; on a fresh machine the two test workers compile
# librosa at the same time: seen in CI). Each worker, and what it starts, keeps its own
# cache; a cold one costs a worker about 35 CPU-s the first time it uses librosa.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "musicrep_jax", "numba",
                                                      os.environ.get("PYTEST_XDIST_WORKER", "main")))
# The suite's programs compile at XLA's backend optimisation level 0 and with the CPU
# backend's older fusion code generator (no fusion emitters), in this process and every
# command it starts. Compiling is most of a smoke run's cost on a CPU (a fresh checkout has
# no compiled program in its cache): level 0 compiles a smoke run's programs in about two
# thirds of the time, and the older generator compiles the update step in a third of
# that (triplet_dis smoke: 2.0-2.3 CPU-s against 6.3-6.7, its init 1.6-1.8 against
# 2.7-3.1, three alternating rounds of scripts/compile_cost.py). The programs run slower,
# which tiny batches do not feel, and round differently: a smoke run's figures move in
# their third decimal (its losses by up to 2% after 24 steps), so every test compares runs
# made under these same flags, never with a figure of the benchmarks or of a command
# outside the tests, which compile with XLA's defaults.
SUITE_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SUITE_XLA_FLAGS}".strip()


def xla_flags(*extra: str) -> str:
  """XLA_FLAGS for a command that sets its own: the suite's and `extra`, no one else's."""
  return " ".join((SUITE_XLA_FLAGS, *extra))


def pytest_configure(config):
  """In-process tests share main's persistent XLA compilation cache (as the subprocess
  runs do): a program compiled once, by any test or worker, loads in milliseconds."""
  del config
  import jax  # pylint: disable=import-outside-toplevel
  import musicrep_jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_compilation_cache_dir", musicrep_jax.compilation_cache_dir())
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def shared_dir(tmp_path_factory, name):
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # shared by the workers of this session
  path = root / name
  path.mkdir(exist_ok=True)
  return path


def made_once(tmp_path_factory, name, make):
  """A folder shared by the session's test workers, filled by make(folder) once: by the
  first worker to get here, while the others wait for it. For what a module's tests only
  read: with `--dist worksteal` a module's tests run on either worker."""
  path = shared_dir(tmp_path_factory, name)
  with open(path / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (path / ".made").exists():
      make(path)
      (path / ".made").write_text("")
  return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data_dir holding synth_music:smoke, built once per session under a file lock."""
  from musicrep_jax.data import registry  # pylint: disable=import-outside-toplevel
  return str(made_once(tmp_path_factory, "tfds", lambda path: registry.load("synth_music:smoke", str(path))))


@pytest.fixture(scope="session")
def smoke_builder(data_dir):
  from musicrep_jax.data import registry  # pylint: disable=import-outside-toplevel
  return registry.load("synth_music:smoke", data_dir, build=False)


_WARM = []


def _warm():
  """This worker's warm command server (tests/warm.py), started on first use."""
  if not _WARM:
    import atexit  # pylint: disable=import-outside-toplevel
    import warm  # pylint: disable=import-outside-toplevel
    _WARM.append(warm.Server(REPO))
    atexit.register(_WARM[0].close)
  return _WARM[0]


def _cold() -> bool:
  return os.environ.get("MUSICREP_JAX_COLD_TESTS", "0") not in ("", "0")


class ColdProc(subprocess.Popen):
  """A fresh interpreter, with the interface of warm.Proc (output in files)."""

  def __init__(self, argv, *, env, out, err, fsize, user, tmp):
    import resource  # pylint: disable=import-outside-toplevel
    import signal  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    self.out = str(out or tempfile.mkstemp(dir=tmp, suffix=".out")[1])
    self.err = self.out if err == "stdout" else str(err or tempfile.mkstemp(dir=tmp, suffix=".err")[1])

    def limits():
      if fsize is not None:  # writes past it fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    with open(self.out, "w") as o:
      e = subprocess.STDOUT if self.err == self.out else open(self.err, "w")
      super().__init__([*prefix, sys.executable, *map(str, argv)], cwd=REPO, stdout=o, stderr=e, preexec_fn=limits,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
      if e is not subprocess.STDOUT:
        e.close()

  def output(self) -> tuple[str, str]:
    with open(self.out, errors="replace") as f, open(self.err, errors="replace") as g:
      return f.read(), g.read()

  def communicate(self, input=None, timeout=None):  # pylint: disable=redefined-builtin
    del input
    self.wait(timeout)
    return self.output()


_COLD_TMP = []  # the cold commands' output folder, made on first use


def start(*argv, env=None, out=None, err=None, fsize=None, user=None, cold=False, timeout=600):
  """Starts `python argv...` in the repo, side by side with others; returns a process with
  pid, poll, wait, send_signal, kill, communicate and output (warm.Proc). It starts warm
  (tests/warm.py: forked from a process that has imported the libraries) unless its
  environment has variables read at import time (warm.can_start), it runs as another
  user, it asks for cold (what it checks is the imports themselves), or
  MUSICREP_JAX_COLD_TESTS=1 asks every command to start cold. out/err: files for its
  output (err="stdout": the same file); fsize: a file-size limit in bytes; user: a uid."""
  import warm  # pylint: disable=import-outside-toplevel
  if not (cold or _cold()) and user is None and warm.can_start(env):
    return _warm().start(argv, env=env, out=out, err=err, fsize=fsize, timeout=timeout)
  import tempfile  # pylint: disable=import-outside-toplevel
  if not _COLD_TMP:
    import atexit  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel
    _COLD_TMP.append(tempfile.mkdtemp(prefix="cold-"))
    atexit.register(shutil.rmtree, _COLD_TMP[0], True)
  return ColdProc(argv, env=env, out=out, err=err, fsize=fsize, user=user, tmp=_COLD_TMP[0])


def run_python(*args, env=None, timeout=600, check=True, fsize=None, user=None, cold=False):
  """Runs `python args` in the repo (warm when it can: see start); returns the CompletedProcess."""
  proc = start(*args, env=env, fsize=fsize, user=user, cold=cold, timeout=timeout)
  try:
    stdout, stderr = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  done = subprocess.CompletedProcess([sys.executable, *args], proc.returncode, stdout, stderr)
  if check and done.returncode != 0:
    raise AssertionError(f"python {' '.join(map(str, args))[:300]} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
  return done


def run_module(module, *args, **kwargs):
  """Runs `python -m module args` in the repo."""
  return run_python("-m", module, *args, **kwargs)


def _cpu_seconds() -> float:
  """CPU seconds of this process, of its waited-for children, and of the warm commands."""
  import resource  # pylint: disable=import-outside-toplevel
  own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + (_WARM[0].cpu_s if _WARM else 0.0)


COSTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "costs.jsonl")


def pytest_collection_modifyitems(config, items):
  """Costliest first, dealt in turn into as many slices of the collection as there are
  test workers: `make test` runs `-n 2 --dist worksteal`, which gives each worker one
  slice and lets an idle worker take the cheapest tests left at the end of another's, so
  every core stays busy to the end. The costs are the CPU seconds of a recorded run
  (tests/costs.jsonl, written by MUSICREP_JAX_TEST_CPU; the last line of a test counts);
  a test not in it counts as the median recorded test of its kind (slow or not)."""
  import json  # pylint: disable=import-outside-toplevel
  import statistics  # pylint: disable=import-outside-toplevel
  recorded = {}
  if os.path.exists(COSTS):
    with open(COSTS) as f:
      recorded = {r["test"]: r["cpu_s"] for r in map(json.loads, filter(str.strip, f))}
  slow = {item.nodeid: item.get_closest_marker("slow") is not None for item in items}
  default = {kind: statistics.median([c for t, c in recorded.items() if slow.get(t) == kind] or [0.0])
             for kind in (True, False)}
  ranked = sorted(items, key=lambda item: -recorded.get(item.nodeid, default[slow[item.nodeid]]))
  n = getattr(config, "workerinput", {}).get("workercount", 1)
  items[:] = [item for i in range(n) for item in ranked[i::n]]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """MUSICREP_JAX_TEST_CPU=FILE appends each test's CPU seconds (setup, call and teardown,
  with every command it ran) and wall seconds to FILE as JSON lines: on a shared machine
  the CPU figure ranks the suite's costs where wall times do not."""
  del nextitem
  path = os.environ.get("MUSICREP_JAX_TEST_CPU")
  if not path:
    yield
    return
  import json  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  cpu, wall = _cpu_seconds(), time.monotonic()
  yield
  line = {"test": item.nodeid, "cpu_s": round(_cpu_seconds() - cpu, 2), "wall_s": round(time.monotonic() - wall, 2)}
  with open(path, "a") as f:
    f.write(json.dumps(line) + "\n")
