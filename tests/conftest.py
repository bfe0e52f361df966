"""Shared fixtures: one smoke build of synth_music for the whole session (all xdist workers)."""

import fcntl
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data_dir holding synth_music:smoke, built once per session under a file lock."""
  path = shared_dir(tmp_path_factory, "tfds")
  with open(path / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    from musicrep_jax.data import registry  # pylint: disable=import-outside-toplevel
    registry.load("synth_music:smoke", str(path))
  return str(path)


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


def run_python(*args, env=None, timeout=600, check=True):
  """Runs `python args` in the repo; returns the CompletedProcess. `-m module ...` with
  no environment of its own starts warm (tests/warm.py: forked from a process that has
  imported the libraries); anything else, or every command with
  MUSICREP_JAX_COLD_TESTS=1, is a fresh interpreter."""
  if args[0] == "-m" and not env and os.environ.get("MUSICREP_JAX_COLD_TESTS", "0") in ("", "0"):
    proc = _warm().run(args[1], args[2:], timeout)
  else:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"python {' '.join(args)[:300]} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc


def run_module(module, *args, **kwargs):
  """Runs `python -m module args` in the repo."""
  return run_python("-m", module, *args, **kwargs)
