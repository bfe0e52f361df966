"""musicrep_jax: disentangled music representations in JAX/Flax.

Importing the package (before JAX starts its backend) turns off XLA's one-convolution
YNNPACK fusions on jaxlib 0.10 CPUs: this model's train step runs about 1.3x faster
without them (docs/PERFORMANCE.md). The flag is only added where its name is known
(jaxlib 0.10.x); MUSICREP_JAX_XLA_TUNING=0, or any ynn flag already in XLA_FLAGS,
leaves XLA_FLAGS as it is.
"""

import os as _os


def _tune_xla_cpu() -> None:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  if _os.environ.get("MUSICREP_JAX_XLA_TUNING", "1") == "0":
    return
  try:
    if not metadata.version("jaxlib").startswith("0.10."):
      return
  except metadata.PackageNotFoundError:
    return
  flags = _os.environ.get("XLA_FLAGS", "")
  if "ynn_fusion_type" not in flags:
    _os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_experimental_ynn_fusion_type=-individual_convolution").strip()


_tune_xla_cpu()


def compilation_cache_dir() -> str:
  """Where compiled XLA programs persist: $MUSICREP_JAX_CACHE, else ~/.cache/musicrep_jax/xla."""
  return _os.environ.get("MUSICREP_JAX_CACHE", _os.path.expanduser("~/.cache/musicrep_jax/xla"))


class _DropDependencyNoise:
  """A logging filter for the commands: TFDS's own deprecation notice about its
  FeatureConnector.dtype (raised inside TFDS, nothing a user can change), and its warning
  that a dataset not built yet has no dataset_info.json (the build follows)."""

  NOISE = ("FeatureConnector.dtype` is deprecated", "has no dataset_info.json")

  def filter(self, record) -> bool:  # pylint: disable=missing-function-docstring
    return not any(n in record.getMessage() for n in self.NOISE)


def _tune_malloc() -> None:
  """glibc's allocator keeps freed memory for reuse instead of returning it to the kernel:
  one heap (M_ARENA_MAX 1), no mmap for large blocks (M_MMAP_MAX 0), trimming only past
  2 GiB free (M_TRIM_THRESHOLD). A train step allocates and frees tens of MB of buffers;
  by default each large one is a fresh mmap whose pages fault in again, which was a quarter
  of a training run's CPU time on this project's 2-core machine (docs/PERFORMANCE.md). The
  cost: a process keeps its peak memory. Skipped off glibc, when GLIBC_TUNABLES sets a
  malloc tunable, or with MUSICREP_JAX_MALLOC_TUNING=0."""
  import ctypes  # pylint: disable=import-outside-toplevel
  import ctypes.util  # pylint: disable=import-outside-toplevel
  if (_os.environ.get("MUSICREP_JAX_MALLOC_TUNING", "1") == "0"
      or "glibc.malloc" in _os.environ.get("GLIBC_TUNABLES", "")):
    return
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
    return
  m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # glibc's malloc.h
  for option, value in ((m_arena_max, 1), (m_mmap_max, 0), (m_trim_threshold, 2**31 - 1)):
    mallopt(option, value)


def cli_environment() -> None:
  """The environment of a musicrep_jax command, set before TensorFlow and JAX are imported
  (variables already set are kept):

  - TensorFlow's C++ log shows warnings and errors only.
  - JAX keeps every compiled program in a persistent cache (compilation_cache_dir()).
    XLA's CPU compilation takes seconds per convolution. JAX by default caches only
    programs that took over 1 s to compile, and the ~35 smaller ones of a smoke run (embedding, metrics, initialisation) cost 1.5-2 s
    of its 13 s when they are compiled again.
  - No oneDNN banner: TensorFlow only reads data here (no float math of its own), so its
    oneDNN kernels change nothing, and TF_ENABLE_ONEDNN_OPTS=0 stops the two-line banner
    that every import printed.
  - No Keras. TensorFlow serves only tf.data here, yet its import loads Keras eagerly:
    1.3 s of every command's start on this project's 2-core CPU (`python -c "import
    tensorflow"` with and without the setting). TF_USE_LEGACY_KERAS=1 makes it look for
    tf_keras instead, and when that is not installed it loads no Keras at all.

  - glibc's allocator keeps freed memory for the next step (_tune_malloc).

  A command runs no user code, so nothing in it needs tf.keras. A plain `import
  musicrep_jax` does not do this: it would leave tf.keras unusable in the user's process,
  and the allocator setting would hold the user's process at its peak memory.
  """
  _tune_malloc()
  from importlib import util  # pylint: disable=import-outside-toplevel
  env = _os.environ
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  absl_logging.get_absl_handler().addFilter(_DropDependencyNoise())  # every logger's records pass it
  env.setdefault("JAX_COMPILATION_CACHE_DIR", compilation_cache_dir())
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  if util.find_spec("tf_keras") is None:
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
