"""The paper's four evaluation tasks on a trained model; each evaluator returns named numbers.

training time, similarity retrieval (recall@K), auto-tagging (ROC-AUC / PR-AUC) and
triplet prediction (tag triplets in the complete space and the category subspaces,
track triplets, the generator's factor-controlled triplets, human triplets).
"""

from __future__ import annotations

import csv
import os

import jax
import numpy as np

from musicrep_jax import input_pipeline
from musicrep_jax import metrics
from musicrep_jax.data import features

CATS = features.CATEGORIES


class Embeddings:
  """Song-level embeddings of a split (mean over non-overlapping 3-s windows) and the
  first two window embeddings of each track (for track triplets)."""

  def __init__(self, setup, state, split: str, max_tracks: int = 0):
    self.song, self.windows = song_embeddings(setup, state, input_pipeline.eval_windows(
        setup.builder, split, crop_len=setup.crop_len, batch_size=setup.config.eval.batch_size,
        max_tracks=max_tracks))
    meta = input_pipeline.track_metadata(setup.builder, split, max_tracks)
    self.labels, self.track_id, self.triplet = meta["labels"], meta["track_id"], meta["triplet"]


def song_embeddings(setup, state, batches) -> tuple[np.ndarray, list[np.ndarray]]:
  """Window batches ({"audio", "track", "valid"}, as input_pipeline makes them) -> the
  song embeddings [N, D] (mean over each track's windows, tracks in index order) and
  each track's first two window embeddings."""
  sums, counts, firsts = {}, {}, {}
  for b in batches:
    e = np.asarray(setup.embed_fn(state, b["audio"]))
    for track, vec in zip(b["track"][b["valid"]], e[b["valid"]]):
      sums[track] = sums.get(track, 0.0) + vec
      counts[track] = counts.get(track, 0) + 1
      first_two = firsts.setdefault(track, [])
      if len(first_two) < 2:
        first_two.append(vec)
  order = sorted(sums)
  if not order:
    return np.zeros((0, int(sum(setup.config.model.subspace_dims))), np.float32), []
  return np.stack([sums[t] / counts[t] for t in order]), [np.stack(firsts[t]) for t in order]


def training_time(meta: dict) -> dict:
  epoch_times = meta.get("epoch_times", [])
  return {"train_time_s": meta.get("train_time_s"),
          "epochs": meta["schedule"]["best_epoch"] + 1 if meta.get("schedule") else None,
          "epochs_run": meta.get("epoch"),
          "time_per_epoch_s": float(np.median(epoch_times)) if epoch_times else None}


def retrieval(test: Embeddings) -> dict:
  return {"recall_at_k": metrics.recall_at_k(test.song, test.labels)}


def prototypes(train: Embeddings) -> np.ndarray:
  """[D, T] mean training embedding of each tag (zeros for tags without tracks)."""
  lab = train.labels
  return (train.song.T @ lab) / np.maximum(lab.sum(0), 1)[None]


def tagging(setup, state, test: Embeddings, train: Embeddings | None) -> dict:
  params = jax.device_get(state["params"])
  protos = prototypes(train).T if train is not None else None
  scores = np.asarray(setup.objective.tag_scores(test.song, params["tag_weights"], params["tag_bias"], protos))
  return metrics.tagging_metrics(test.labels, scores, setup.tag_category, CATS)


def _per_category(emb, triplets_by_cat, masks):
  out = {c: metrics.triplet_accuracy(emb, triplets_by_cat[i], None if masks is None else masks[i])
         for i, c in enumerate(CATS)}
  vals = [v for v in out.values() if v is not None]
  out["overall"] = float(np.mean(vals)) if vals else None
  return out


def tag_triplets(setup, test: Embeddings, per_category: int) -> dict:
  by_cat = [metrics.sample_tag_triplets(test.labels, setup.tag_category, i, per_category) for i in range(len(CATS))]
  out = {"complete": _per_category(test.song, by_cat, None)}
  out["subspace"] = (_per_category(test.song, by_cat, setup.objective.category_masks)
                     if setup.config.loss.disentangled else None)
  return {"triplet_acc": out, "tag_triplets_per_category": [len(t) for t in by_cat]}


def track_triplets(test: Embeddings, seed: int = 0) -> dict:
  """Anchor and positive: two windows of one track; negative: a window of another."""
  have_two = [i for i, w in enumerate(test.windows) if len(w) >= 2]
  if len(have_two) < 2:
    return {"track_triplet_acc": None}
  rng = np.random.default_rng(seed)
  firsts = np.stack([test.windows[i][0] for i in have_two])
  seconds = np.stack([test.windows[i][1] for i in have_two])
  n = len(have_two)
  others = (np.arange(n) + rng.integers(1, n, n)) % n
  emb = np.concatenate([firsts, seconds])
  trip = np.stack([np.arange(n), n + np.arange(n), others], 1)
  return {"track_triplet_acc": metrics.triplet_accuracy(emb, trip)}


def factor_triplets(setup, state, max_tracks: int = 0) -> dict:
  """The generator's factor-controlled triplets (split test_triplets, synth_music only)."""
  if "test_triplets" not in setup.builder.info.splits:
    return {}
  emb = Embeddings(setup, state, "test_triplets", max_tracks)
  rows = {}
  for i, (tid, role, cat) in enumerate(emb.triplet):
    rows.setdefault((cat, tid), [None] * 3)[role] = i
  by_cat = [np.array([r for (c, _), r in sorted(rows.items()) if c == i and None not in r], int).reshape(-1, 3)
            for i in range(len(CATS))]
  out = {"factor_triplet_acc": _per_category(emb.song, by_cat, None)}
  if setup.config.loss.disentangled:
    out["factor_triplet_acc_subspace"] = _per_category(emb.song, by_cat, setup.objective.category_masks)
  return out


def human_triplets(path: str, test: Embeddings, min_agreement: float = 0.9) -> dict:
  """Triplets of a dim-sim style CSV: columns anchor, positive, negative (clip ids of the
  test split) and agreement; rows below `min_agreement` or naming unknown clips are skipped."""
  index = {t: i for i, t in enumerate(test.track_id)}
  rows, unknown = [], 0
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = {"anchor", "positive", "negative"} - set(reader.fieldnames or ())
    if missing:
      raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}: give anchor,positive,negative[,agreement]")
    for r in reader:
      if float(r.get("agreement") or 1.0) < min_agreement:
        continue
      ids = [r["anchor"], r["positive"], r["negative"]]
      if all(i in index for i in ids):
        rows.append([index[i] for i in ids])
      else:
        unknown += 1
  return {"human_triplet_acc": metrics.triplet_accuracy(test.song, np.array(rows, int).reshape(-1, 3)),
          "human_triplets_used": len(rows), "human_triplets_unknown_ids": unknown}


def evaluate(setup, state, meta: dict, workdir: str | None = None) -> dict:
  """All tasks; the dict written to workdir/eval.json. With `workdir`, the test split's
  song embeddings and labels go to workdir/test_embeddings.npz (for plots), and a
  triplet model's tag prototypes to workdir/prototypes.npy (for `search tag`)."""
  cfg = setup.config.eval
  test = Embeddings(setup, state, "test", cfg.max_tracks)
  if workdir:
    np.savez(os.path.join(workdir, "test_embeddings.npz"), embeddings=test.song, labels=test.labels,
             track_id=np.array(test.track_id), tag_category=setup.tag_category, dims=setup.dim_category,
             disentangled=bool(setup.config.loss.disentangled))
  out = {**training_time(meta), "val_loss_best": meta["schedule"]["best"] if meta.get("schedule") else None}
  out.update(retrieval(test))
  train = (Embeddings(setup, state, "train", cfg.prototype_tracks)
           if setup.config.loss.name.startswith("triplet") else None)
  out.update(tagging(setup, state, test, train))
  if workdir and train is not None:
    np.save(os.path.join(workdir, "prototypes.npy"), prototypes(train))
  out.update(tag_triplets(setup, test, cfg.triplets_per_category))
  out.update(track_triplets(test))
  out.update(factor_triplets(setup, state))
  if setup.config.human_triplets:
    out.update(human_triplets(setup.config.human_triplets, test))
  out["test_tracks"] = len(test.song)
  return out
