"""The project's own exceptions: the only ones reported as a user's mistake.

Every command (`main`, `search`, `data`, the tools) catches `UserError` at the top and
prints its message as one line with exit status 2: the message names the file, flag or
config key and says what to do. Any other exception is a bug (ours or a dependency's)
and shows its traceback. `--debug` (or MUSICREP_JAX_DEBUG=1) shows the traceback of a
user error too.
"""

from __future__ import annotations

import os
import sys


class UserError(Exception):
  """Bad input or an unusable file; the message says what to do."""


class ConfigError(UserError):
  """A config value or flag that cannot work (checked before any expensive work)."""


class DatasetError(UserError):
  """A dataset that cannot be found, built or read; the message says what to do."""


def debug() -> bool:
  return os.environ.get("MUSICREP_JAX_DEBUG", "0") not in ("", "0")


def die(message: str, status: int = 2, hard: bool = True) -> None:
  """Prints the message as the last line on stderr and ends the process with `status`;
  hard: at once, because background threads of Orbax or TensorStore left by a failed
  read would otherwise print their own tracebacks while the interpreter shuts down
  (hard=False raises SystemExit, for callers that catch it)."""
  print(message, file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  if not hard:
    sys.exit(status)
  os._exit(status)  # pylint: disable=protected-access


def exit_on_user_error(fn, *args, hard: bool = True, **kwargs):
  """Runs fn; a UserError becomes 'error: <message>' on stderr and exit status 2
  (re-raised with its traceback when debugging)."""
  try:
    return fn(*args, **kwargs)
  except UserError as e:
    if debug():
      raise
    die(f"error: {e}", hard=hard)
