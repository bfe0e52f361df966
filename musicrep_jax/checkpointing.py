"""Orbax checkpoints of a run: the latest ones for resuming, and the best by validation loss.

workdir/checkpoints/<step>/ holds {"state": train state, "meta": JSON with the epoch,
the plateau schedule and the model's identity}; workdir/best/<step>/ the same for the
best validation loss. Orbax writes each step to a temporary folder and renames it
when complete, so a checkpoint cut off by a kill is never restored.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orbax.checkpoint as ocp

from musicrep_jax import errors


class CheckpointError(errors.UserError):
  """A checkpoint that cannot be used; the message says why and what to do."""


def _manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=True),
      item_names=("state", "meta"))


def _save_args(state: Any, meta: dict) -> ocp.args.Composite:
  return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))


class Checkpoints:
  """The latest (for resuming) and the best (for evaluation) checkpoints of a workdir."""

  def __init__(self, workdir: str):
    self.latest = _manager(os.path.join(workdir, "checkpoints"), max_to_keep=2)
    self.best = _manager(os.path.join(workdir, "best"), max_to_keep=1)

  def save(self, step: int, state: Any, meta: dict, *, best: bool = False) -> None:
    """Starts writing step `step` (asynchronously); a failed write (this one's or an
    earlier one's) surfaces here or in wait() as a CheckpointError."""
    args = _save_args(state, meta)
    with self._errors():
      self.latest.save(step, args=args, force=True)
      if best:
        self.best.save(step, args=args, force=True)

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
    """(state, meta) of the newest complete checkpoint, or None when there is none."""
    manager = self.best if which == "best" else self.latest
    step = manager.latest_step()
    if step is None:
      return None
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    return self.restore_state(manager, step, abstract_state, meta)

  @staticmethod
  def restore_state(manager, step, abstract_state, meta):
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    except (ValueError, KeyError, TypeError) as e:
      raise CheckpointError(
          f"{manager.directory}/{step} does not match this model ({meta.get('model', '?')} was saved): "
          "use a new --workdir or the config it was trained with") from e
    return restored["state"], meta

  def read_meta(self, which: str = "latest") -> dict | None:
    manager = self.best if which == "best" else self.latest
    step = manager.latest_step()
    if step is None:
      return None
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def wait(self) -> None:
    with self._errors():
      self.latest.wait_until_finished()
      self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
