"""The commands' process environment (musicrep_jax.cli_environment), each checked in a fresh process."""

import ctypes
import os
import subprocess
import sys

import pytest

_LARGE_BLOCK_IS_MMAPPED = """
import ctypes
import musicrep_jax
musicrep_jax.cli_environment()
class MallInfo2(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(libc.mallinfo2().hblks - before)
libc.free(ctypes.c_void_p(block))
"""


def _glibc_has_mallinfo2() -> bool:
  try:
    return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
  except OSError:
    return False


@pytest.mark.skipif(not _glibc_has_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize("setting, mmapped", [("1", 0), ("0", 1)])
def test_commands_keep_large_blocks_on_the_heap_unless_opted_out(setting, mmapped):
  """A command's 64 MB allocation comes from the heap (kept for reuse), not from a fresh
  mmap as glibc does by default; MUSICREP_JAX_MALLOC_TUNING=0 leaves glibc's default."""
  env = {**os.environ, "MUSICREP_JAX_MALLOC_TUNING": setting}
  env.pop("GLIBC_TUNABLES", None)
  out = subprocess.run([sys.executable, "-c", _LARGE_BLOCK_IS_MMAPPED], env=env, capture_output=True, text=True,
                       check=True)
  assert int(out.stdout.split()[-1]) == mmapped
