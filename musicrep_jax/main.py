"""Entry point: `python -m musicrep_jax.main --config=configs/proxy_dis.py[:preset] --workdir=DIR`.

--mode=train trains (resuming when DIR holds a checkpoint) and then evaluates;
--mode=eval evaluates the run's checkpoint. Override any key with --config.<key>=<value>.
"""

import os
import sys

import musicrep_jax

musicrep_jax.cli_environment()

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Model config file[:preset].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and eval.json go.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (then evaluate) or eval only.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Multi-process run: jax.distributed.initialize() "
                                  "(auto-detected on Cloud TPU; elsewhere give the three flags below).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout_s", 100, "Multi-process: seconds without a heartbeat after "
                                  "which JAX's coordination service declares a process lost and ends the others.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the traceback of a user error too (or MUSICREP_JAX_DEBUG=1).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax and TFDS are chatty at INFO
  import jax  # pylint: disable=import-outside-toplevel  # its compilation cache: see cli_environment()
  if _DISTRIBUTED.value or _COORDINATOR.value:
    try:  # cross-process collectives when the devices are CPUs (tests, CPU clusters)
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:
      pass
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value, heartbeat_timeout_seconds=_HEARTBEAT.value)
  from musicrep_jax import errors  # pylint: disable=import-outside-toplevel
  from musicrep_jax import run  # pylint: disable=import-outside-toplevel
  try:  # ml_collections defers a config file's failure to load until the config is read
    _CONFIG.value.keys()
  except OSError as e:
    errors.die(f"error: --config={_config_arg(sys.argv)}: {_load_failure(e)}", 2)
  if _DEBUG.value:
    os.environ["MUSICREP_JAX_DEBUG"] = "1"
  try:
    errors.exit_on_user_error(run.run, _CONFIG.value, _WORKDIR.value, _MODE.value)
  except run.train.Preempted as e:
    sys.exit(e.status)  # 143 after SIGTERM, 130 after SIGINT: the conventional statuses
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1 or errors.debug():
      raise
    # A collective failed: most often another process of the run is gone (a lost host).
    # Ending at once skips JAX's shutdown barrier, which would wait for the lost process.
    step = run.checkpointing.newest_step(_WORKDIR.value)
    errors.die(f"error: process {jax.process_index()} stopped: an operation across the run's processes failed "
               f"({str(e).splitlines()[0][:160]}); if another process was lost, restart every process with the "
               f"same command and the run resumes from "
               f"{f'step {step}' if step is not None else 'the start (no checkpoint was completed)'}", 3)


def _config_arg(argv) -> str:
  return next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "?")


def _load_failure(e: BaseException) -> str:
  """One clause for a config file that did not load."""
  text = str(e)
  if "No such file or directory" in text:
    return "the file does not exist: give a config file, e.g. configs/proxy_dis.py"
  if isinstance(e, SyntaxError):
    return f"the file has a syntax error at line {e.lineno}: {e.msg}"
  return f"the file does not load ({type(e).__name__}: {text.splitlines()[-1].strip() if text else ''})"


def parse_flags(argv):
  """absl's parsing (which loads the config file and applies --config.* overrides), with
  a config file's own error or an override of a key the config lacks as one sentence."""
  from musicrep_jax import errors  # pylint: disable=import-outside-toplevel
  try:
    return app.parse_flags_with_usage(argv)
  except errors.UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except (SyntaxError, OSError, NameError, ImportError, TypeError, ValueError) as e:  # the config file's own code
    print(f"error: --config={_config_arg(argv)}: {_load_failure(e)}", file=sys.stderr)
    sys.exit(2)
  except (AttributeError, KeyError) as e:  # ml_collections: an override names a key that does not exist
    key = str(e).strip("\"'")
    arg = next((a for a in argv if a.startswith("--config.") and a.split("=")[0].endswith("." + key)), "--config.*")
    print(f"error: {arg} names a config key that does not exist: the keys are in musicrep_jax/configlib.py "
          "(base) and the config file", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
