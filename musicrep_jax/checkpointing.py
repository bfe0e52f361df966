"""Orbax checkpoints of a run: the latest ones for resuming, and the best by validation loss.

workdir/checkpoints/<step>/ holds {"state": train state, "meta": JSON with the epoch,
the plateau schedule and the model's identity}; workdir/best/<step>/ the same for the
best validation figure. The state is written packed: its leaves concatenated into one
flat array per dtype (pack_state), since Orbax's cost is per array: a default-preset
state of 322 arrays took 0.55 CPU-s a save, packed 0.05 (scripts/fixed_costs.py).
Checkpoints written before packing (one array per leaf) still restore. Orbax writes each
step to a temporary folder and renames it when complete, so a checkpoint cut off by a
kill is never restored.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import sys
import threading
from typing import Any

from etils import epath
import orbax.checkpoint as ocp

from musicrep_jax import errors
from musicrep_jax import progress


class CheckpointError(errors.UserError):
  """A checkpoint that cannot be used; the message says why and what to do."""


class NoIntactCheckpoint(CheckpointError):
  """Every checkpoint of a folder is unreadable."""


def _manager(directory: str, max_to_keep: int, barrier_prefix: str | None = None) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      progress.path(directory),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True,
          # Both managers save asynchronously, often the same step: with several processes,
          # each needs its own names for the barriers of a save, or the two saves collide.
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              barrier_sync_key_prefix=barrier_prefix or os.path.basename(directory))),
      item_names=("state", "meta"))


def state_layout(tree: Any) -> str:
  """A digest of every leaf's path, shape and dtype: a packed state restores only into a
  tree of the same layout."""
  import jax  # pylint: disable=import-outside-toplevel
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  text = json.dumps([(jax.tree_util.keystr(p), list(x.shape), str(x.dtype)) for p, x in leaves])
  return hashlib.sha1(text.encode()).hexdigest()


def _packed_sizes(tree: Any) -> dict[str, int]:
  """{dtype name: the number of elements of every leaf of that dtype}."""
  import jax  # pylint: disable=import-outside-toplevel
  sizes: dict[str, int] = {}
  for x in jax.tree.leaves(tree):
    sizes[str(x.dtype)] = sizes.get(str(x.dtype), 0) + math.prod(x.shape)
  return sizes


def _concatenated(leaves, concatenate) -> dict:
  groups: dict[str, list] = {}
  for x in leaves:
    groups.setdefault(str(x.dtype), []).append(x.reshape(-1))
  return {dtype: concatenate(xs) for dtype, xs in groups.items()}


@functools.lru_cache(maxsize=8)
def _packer(sharding):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  return jax.jit(lambda leaves: _concatenated(leaves, jnp.concatenate), out_shardings=sharding)


def pack_state(state: Any) -> dict:
  """{dtype name: every leaf of that dtype, flattened and concatenated in leaf order}: a
  replicated state (the training state always is) as a few arrays, replicated alike (host
  arrays stay host arrays)."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  leaves = jax.tree.leaves(state)
  if not all(isinstance(x, jax.Array) for x in leaves):
    return _concatenated([np.asarray(x) for x in leaves], np.concatenate)
  if not all(x.is_fully_replicated for x in leaves):
    raise ValueError("pack_state takes a replicated state")
  return _packer(leaves[0].sharding)(leaves)


def unpack_state(packed: dict, abstract_state: Any) -> Any:
  """pack_state's inverse, into the shapes, dtypes and shardings of abstract_state. On
  the host (each process holds a whole copy of a replicated array): a jitted unpack of
  322 slices cost 4.5 CPU-s to compile, more than the restore."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  host = {dtype: np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x) for dtype, x in packed.items()}
  leaves, treedef = jax.tree.flatten(abstract_state)
  offset, out = {}, []
  for x in leaves:
    dtype = str(x.dtype)
    start, n = offset.get(dtype, 0), math.prod(x.shape)
    value = host[dtype][start:start + n].reshape(x.shape)
    out.append(value if x.sharding is None else
               jax.make_array_from_callback(x.shape, x.sharding, lambda index, v=value: v[index]))
    offset[dtype] = start + n
  return jax.tree.unflatten(treedef, out)


def _packed_abstract(abstract_state: Any) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  leaves = jax.tree.leaves(abstract_state)
  return {dtype: jax.ShapeDtypeStruct((n,), dtype, sharding=leaves[0].sharding)
          for dtype, n in _packed_sizes(abstract_state).items()}


def _save_args(state: Any, meta: dict) -> ocp.args.Composite:
  meta = {**meta, "state_layout": state_layout(state)}
  return ocp.args.Composite(state=ocp.args.StandardSave(pack_state(state)), meta=ocp.args.JsonSave(meta))


def _first_line(e: Exception) -> str:
  return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _log(msg: str) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0:
    print(msg, flush=True)


@contextlib.contextmanager
def _quiet_dependency_logs():
  """Orbax and TensorStore log a traceback at ERROR level for a file they cannot read;
  the caller reports the failure in one line instead (MUSICREP_JAX_DEBUG=1 keeps them)."""
  import gc  # pylint: disable=import-outside-toplevel
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  if errors.debug():
    yield
    return
  _drop_late_reports()
  before = absl_logging.get_verbosity()
  asyncio_log = logging.getLogger("asyncio")  # "Task exception was never retrieved" of a failed read
  asyncio_before = asyncio_log.level
  absl_logging.set_verbosity(absl_logging.FATAL)
  asyncio_log.setLevel(logging.CRITICAL)
  try:
    yield
  except BaseException:
    # The failed read's futures are collected (and their errors dropped) while quiet. Only
    # after a failure: a full collection costs about 0.35 CPU-s (1-2 s of wall time on a
    # loaded 2-core machine) in a process that has loaded JAX and TensorFlow, and every
    # metadata read and restore of a run passes through here.
    gc.collect()
    raise
  finally:
    absl_logging.set_verbosity(before)
    asyncio_log.setLevel(asyncio_before)


_GAVE_UP_ON: set[str] = set()  # checkpoints reported unreadable: later noise about them is dropped


def _about_a_failed_read(exc_type, exc, text: str = "") -> bool:
  """A late report of a read this process already gave up on (and said so in one line):
  a callback of a failed TensorStore read that found Orbax's event loop closed, or an
  exception or log record that names one of those checkpoints."""
  if exc_type is RuntimeError and str(exc) == "Event loop is closed":
    return True
  text = f"{text} {exc!r}" if exc is not None else text
  return any(path in text for path in _GAVE_UP_ON)


class _DropFailedReads(logging.Filter):
  def filter(self, record):
    exc = record.exc_info[1] if record.exc_info else None
    return not _about_a_failed_read(type(exc), exc, record.getMessage())


def _drop_late_reports() -> None:
  """A failed TensorStore read leaves futures and tasks that finish or are collected after
  Orbax has moved on: asyncio logs "Task exception was never retrieved", callbacks print
  "Event loop is closed" tracebacks from a background thread (sys.excepthook, the
  threading hook or the unraisable hook), at any moment up to the exit. Installed before a
  process's first checkpoint read (a callback can fire as soon as a read fails), it drops
  for the rest of the process every "Event loop is closed" RuntimeError and every report
  that names a checkpoint given up on (_gave_up_on); all else goes to the usual hooks."""
  if getattr(sys.excepthook, "_musicrep_jax", False):
    return
  excepthook, unraisablehook, thread_hook = sys.excepthook, sys.unraisablehook, threading.excepthook

  def quiet_excepthook(exc_type, exc, tb):
    if not _about_a_failed_read(exc_type, exc):
      excepthook(exc_type, exc, tb)

  def quiet_thread_hook(args):
    if not _about_a_failed_read(args.exc_type, args.exc_value):
      thread_hook(args)

  def quiet_unraisablehook(unraisable):
    if not _about_a_failed_read(unraisable.exc_type, unraisable.exc_value, repr(unraisable.object)):
      unraisablehook(unraisable)

  quiet_excepthook._musicrep_jax = True  # pylint: disable=protected-access
  sys.excepthook, sys.unraisablehook, threading.excepthook = quiet_excepthook, quiet_unraisablehook, quiet_thread_hook
  for name in ("asyncio", "absl"):
    logging.getLogger(name).addFilter(_DropFailedReads())


def _gave_up_on(path) -> None:
  _GAVE_UP_ON.add(str(path))


def _steps(workdir: str) -> list[int]:
  """The completed training checkpoints' steps, newest first (Orbax names a checkpoint
  by its step once it is complete)."""
  try:
    return sorted((int(p.name) for p in (progress.path(workdir) / "checkpoints").iterdir() if p.name.isdigit()),
                  reverse=True)
  except (FileNotFoundError, NotADirectoryError):
    return []


def newest_step(workdir: str) -> int | None:
  return next(iter(_steps(workdir)), None)


def read_newest_meta(workdir: str) -> dict | None:
  """The newest readable checkpoint metadata of a workdir, read as plain files: no Orbax
  manager is made, nothing is created, and no process of a multi-process run waits for
  the others (they may reach this at different times)."""
  root = progress.path(workdir) / "checkpoints"
  for step in _steps(workdir):
    try:
      return json.loads((root / str(step) / "meta" / "metadata").read_text())
    except (OSError, ValueError):
      _log(f"checkpoint step {step} in {root} has unreadable metadata; trying an older one")
  return None


def _copy_tree(src: epath.Path, dst: epath.Path) -> None:
  """A folder's files copied under dst (local or object store: one level at a time)."""
  dst.mkdir(parents=True, exist_ok=True)
  for f in src.iterdir():
    if f.is_dir():
      _copy_tree(f, dst / f.name)
    else:
      f.copy(dst / f.name)


class Checkpoints:
  """The latest (for resuming) and the best (for evaluation) checkpoints of a workdir."""

  def __init__(self, workdir: str):
    self.latest = _manager(os.path.join(workdir, "checkpoints"), max_to_keep=2)
    self.best = _manager(os.path.join(workdir, "best"), max_to_keep=1)

  def save(self, step: int, state: Any, meta: dict, *, best: bool = False) -> None:
    """Starts writing step `step` (asynchronously), in place of a checkpoint of the same
    step (a preemption at an epoch's last step saves it before the epoch's validation, and
    the rerun saves it again with the epoch's metadata; should this write fail, the older
    checkpoint it would have followed is the newest). A failed write (this one's or an
    earlier one's) surfaces here or in wait() as a CheckpointError."""
    args = _save_args(state, meta)
    with self._errors():
      for manager in (self.latest, self.best) if best else (self.latest,):
        if step in manager.all_steps():
          manager.delete(step)
        manager.save(step, args=args, force=True)

  def keep_fewer_cuts(self, cuts: int, state: Any, meta: dict) -> None:
    """workdir/fewer_cuts/<cuts>/: the checkpoints of the run that a schedule with `cuts`
    learning-rate cuts (the same patience) makes. It takes the same steps as this run until
    this run's cut number cuts + 1 and stops there, so its best/ is a copy of this run's
    best/ now, and its checkpoints/ is `state` with `meta` (that schedule's state when it
    stops). `python scripts/fewer_cuts_runs.py` makes runs of that schedule from them."""
    import jax  # pylint: disable=import-outside-toplevel
    root = epath.Path(self.best.directory).parent / "fewer_cuts" / str(cuts)
    with self._errors():
      self.best.wait_until_finished()
      step = self.best.latest_step()
      if jax.process_index() == 0:  # the copy once; the save below by every process, as Orbax saves
        if root.exists():  # a rerun of the epoch after a kill: made again
          root.rmtree()
        if step is not None:
          _copy_tree(epath.Path(self.best.directory) / str(step), root / "best" / str(step))
      manager = _manager(str(root / "checkpoints"), max_to_keep=1, barrier_prefix=f"fewer_cuts_{cuts}")
      try:
        manager.save(int(state["step"]), args=_save_args(state, meta), force=True)
        manager.wait_until_finished()
      finally:
        manager.close()

  @contextlib.contextmanager
  def _errors(self):
    try:
      yield
    except (OSError, ValueError, RuntimeError) as e:
      kept = self.latest.latest_step()
      raise CheckpointError(
          f"writing a checkpoint under {os.path.dirname(str(self.latest.directory))} "
          f"failed ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); the newest complete "
          f"checkpoint{f' (step {kept})' if kept is not None else ''} is intact: free disk space and rerun "
          "the same command to resume") from e

  def set_aside_newer(self, step: int) -> None:
    """Moves the training checkpoints newer than `step` (unreadable ones a resume skipped)
    to workdir/unreadable_checkpoints/, out of Orbax's way: the rerun redoes those steps,
    and the files stay for a look."""
    import time  # pylint: disable=import-outside-toplevel
    for s in self.latest.all_steps():
      if s > step:
        src = epath.Path(self.latest.directory) / str(s)
        dst = epath.Path(self.latest.directory).parent / "unreadable_checkpoints" / f"{s}-{int(time.time())}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        _log(f"moved the unreadable checkpoint {src} to {dst}")
    self.latest.reload()

  def repair_best(self, step: int, best_step: int | None, abstract_state: Any) -> None:
    """After a kill between the latest and the best save of an epoch, makes best/ hold
    the best checkpoint named by the resumed metadata, and drops best/ steps newer than
    the resumed step (the rerun redoes them)."""
    for s in self.best.all_steps():
      if s > step:
        self.best.delete(s)
    if best_step is None or self.best.latest_step() == best_step or best_step not in self.latest.all_steps():
      return
    meta = self.latest.restore(best_step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    state, _ = self.restore_state(self.latest, best_step, abstract_state, meta)
    with self._errors():
      self.best.save(best_step, args=_save_args(state, meta), force=True)
      self.best.wait_until_finished()

  def restore(self, abstract_state: Any, which: str = "latest") -> tuple[Any, dict] | None:
    """(state, meta) of the newest intact checkpoint, or None when there is none. A
    checkpoint whose files cannot be read (a corrupt file, a disk error) is skipped with
    one line saying so, and the next older one is used."""
    manager = self.best if which == "best" else self.latest
    steps = sorted(manager.all_steps(), reverse=True)
    first_error = None
    for step in steps:
      try:
        with _quiet_dependency_logs():  # an unreadable file: our one line below, not Orbax's traceback
          meta = self._meta(manager, step)
          return self.restore_state(manager, step, abstract_state, meta)
      except CheckpointError:
        raise  # a checkpoint of another model: not a corrupt file
      except Exception as e:  # pylint: disable=broad-except  # Orbax / TensorStore raise many types for bad files
        first_error = first_error or e
        _gave_up_on(epath.Path(manager.directory) / str(step))
        _log(f"checkpoint step {step} in {manager.directory} is unreadable ({_first_line(e)}); "
             "trying an older one")
    if first_error is not None:
      raise NoIntactCheckpoint(f"no intact checkpoint in {manager.directory} ({_first_line(first_error)}): "
                            "train again in a new --workdir") from first_error
    return None

  @staticmethod
  def _meta(manager, step) -> dict:
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  @staticmethod
  def restore_state(manager, step, abstract_state, meta):
    layout = meta.get("state_layout")  # None: written before packing, one array per leaf
    mismatch = CheckpointError(
        f"{manager.directory}/{step} does not match this model ({meta.get('model', '?')} was saved): "
        "use a new --workdir or the config it was trained with")
    if layout is not None and layout != state_layout(abstract_state):
      raise mismatch
    target = abstract_state if layout is None else _packed_abstract(abstract_state)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except (ValueError, KeyError, TypeError) as e:
      raise mismatch from e
    state = restored["state"] if layout is None else unpack_state(restored["state"], abstract_state)
    return state, meta

  def read_meta(self, which: str = "latest") -> dict | None:
    """The metadata of the newest checkpoint whose metadata reads, or None."""
    manager = self.best if which == "best" else self.latest
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        with _quiet_dependency_logs():
          return self._meta(manager, step)
      except Exception as e:  # pylint: disable=broad-except
        _gave_up_on(epath.Path(manager.directory) / str(step))
        _log(f"checkpoint step {step} in {manager.directory} has unreadable metadata ({_first_line(e)}); "
             "trying an older one")
    return None

  def wait(self) -> None:
    with self._errors():
      self.latest.wait_until_finished()
      self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
