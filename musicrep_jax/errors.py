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


def exit_on_user_error(fn, *args, **kwargs):
  """Runs fn; a UserError becomes 'error: <message>' on stderr and exit status 2
  (re-raised with its traceback when debugging)."""
  try:
    return fn(*args, **kwargs)
  except UserError as e:
    if debug():
      raise
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
