"""Reduce-on-plateau learning rate with early stopping, as in the paper.

Divide the learning rate by `factor` when the validation loss has not improved for
`patience` epochs, at most `max_reductions` times; when it stalls again after the
last reduction, stop. An epoch improves when its loss is below best x (1 - threshold)
(PyTorch's relative threshold; 0: any decrease). The state is a small dict so it
travels in checkpoint metadata.

What is monitored (config.train.select_by) also picks the best checkpoint: "loss", each
model's own validation loss, or "quality", the validation quality of
`evaluate.validation_quality` (the mean of validation recall@1 and tagging ROC-AUC), one
figure for every loss, so that every model is stopped and selected by the same rule.
The schedule minimises, so quality enters negated.
"""

from __future__ import annotations

import math


SELECT_BY = ("loss", "quality")


def monitored(select_by: str, val_loss: float, quality: dict) -> float:
  """The figure the schedule minimises after an epoch."""
  return val_loss if select_by == "loss" else -quality["val_quality"]


def shown(select_by: str, best: float) -> float:
  """The schedule's best as people read it (quality positive)."""
  return best if select_by == "loss" else -best


def init(learning_rate: float) -> dict:
  return dict(lr=learning_rate, best=math.inf, best_epoch=-1, bad_epochs=0, reductions=0, stop=False)


def update(state: dict, val_loss: float, epoch: int, *, factor: float, patience: int,
           max_reductions: int, threshold: float = 0.0) -> dict:
  """The schedule after an epoch that ended with `val_loss` (pure: returns a new dict)."""
  s = dict(state)
  bar = s["best"] - threshold * abs(s["best"]) if math.isfinite(s["best"]) else math.inf
  if val_loss < bar:
    s.update(best=val_loss, best_epoch=epoch, bad_epochs=0)
    return s
  s["bad_epochs"] += 1
  if s["bad_epochs"] >= patience:
    if s["reductions"] >= max_reductions:
      s["stop"] = True
    else:
      s.update(lr=s["lr"] / factor, reductions=s["reductions"] + 1, bad_epochs=0)
  return s


def replay(figures, learning_rate: float, *, factor: float, patience: int, max_reductions: int,
           threshold: float = 0.0) -> dict:
  """The schedule run again on a run's logged per-epoch figures (what it minimised, in
  epoch order): its lr after each epoch, and its best and last epoch. The rule is a pure
  function of the figures, so a run made with fewer reductions (the same patience)
  follows the same lrs until its extra reduction would come, and stops there: its best
  epoch, and so its selected checkpoint, is this replay's with that max_reductions; and
  a run with a longer patience follows the same lrs until this one's first cut. "state":
  the schedule's state after the last epoch replayed."""
  s, lrs = init(learning_rate), []
  for epoch, figure in enumerate(figures):
    s = update(s, figure, epoch, factor=factor, patience=patience, max_reductions=max_reductions, threshold=threshold)
    lrs.append(s["lr"])
    if s["stop"]:
      break
  return dict(lrs=lrs, best_epoch=s["best_epoch"], last_epoch=len(lrs) - 1, stopped=s["stop"], state=s)


def replay_run(train: dict, epochs: list[dict], max_reductions: int | None = None, patience: int | None = None) -> dict:
  """`replay` on a run's own record: `train` its config.json's "train" section, `epochs`
  its metrics.jsonl lines that end an epoch (those with "val_loss"), in order; by default
  with the run's own max_reductions and patience."""
  figures = [monitored(train["select_by"], e["val_loss"], e) for e in epochs]
  return replay(figures, train["learning_rate"], factor=train["plateau_factor"],
                patience=train["plateau_patience"] if patience is None else patience,
                threshold=train["plateau_threshold"],
                max_reductions=train["max_reductions"] if max_reductions is None else max_reductions)
