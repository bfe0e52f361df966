"""The paper's evaluation tasks; each evaluator is a small unit that returns named numbers.

An evaluator takes the `Context` of a run (the model, its state and lazily computed
song embeddings, shared between evaluators) and returns a dict that goes into
eval.json. `EVALUATORS` lists them by name; `config.eval.tasks` picks which run (all by
default). Adding a task is one function here and one entry in `EVALUATORS` (and in
`configlib.EVAL_TASKS` to run it by default). `flatten` names every number of eval.json
by its path ("recall_at_k/1"): the report and the run's summary line read those names.

Tasks: training time, similarity retrieval (recall@K), auto-tagging (ROC-AUC / PR-AUC)
and triplet prediction (tag triplets in the complete space and the category subspaces,
track triplets, the generator's factor-controlled triplets, human triplets).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os

import numpy as np

from musicrep_jax import conditions
from musicrep_jax import errors
from musicrep_jax import losses
from musicrep_jax import metrics
from musicrep_jax import progress
from musicrep_jax import schedule



@dataclasses.dataclass
class Embeddings:
  """Song-level embeddings of a split (mean over non-overlapping 3-s windows) with the
  first two window embeddings of each track (for track triplets) and the metadata."""
  song: np.ndarray  # [N, D]
  windows: list  # N arrays [<=2, D]
  labels: np.ndarray  # [N, T] bool
  track_id: list
  triplet: np.ndarray  # [N, 3] (triplet id, role, category) or -1s

  @classmethod
  def of_split(cls, setup, state, split: str, max_tracks: int = 0, max_windows: int = 0) -> Embeddings:
    from musicrep_jax import input_pipeline  # pylint: disable=import-outside-toplevel  # TensorFlow: not for search
    meta = {}  # filled by the same read of the split as the windows
    song, windows = song_embeddings(setup, state, input_pipeline.eval_windows(
        setup.builder, split, crop_len=setup.crop_len, batch_size=setup.config.eval.batch_size,
        max_tracks=max_tracks, max_windows=max_windows, meta=meta))
    return cls(song, windows, meta["labels"], meta["track_id"], meta["triplet"])


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


class Context:
  """What the evaluators of one run share: the model, its state and the training
  metadata; the test and training embeddings are computed once, when first asked for.

  `test`, `validation` and the prototypes see the labels of the run's condition (an
  open-set run's held-out tags removed: the standard figures are then seen-tag figures);
  `test_all_tags` and `validation_all_tags` are the same embeddings with every label."""

  def __init__(self, setup, state, meta: dict):
    self.setup, self.state, self.meta = setup, state, meta
    self.config = setup.config
    self.categories = setup.categories  # the dataset's, in order
    self.held_out = getattr(setup, "held_out", np.zeros(len(setup.tag_names), bool))

  def _visible(self, emb: Embeddings) -> Embeddings:
    return dataclasses.replace(emb, labels=conditions.visible(emb.labels, self.held_out))

  @functools.cached_property
  def test_all_tags(self) -> Embeddings:
    return Embeddings.of_split(self.setup, self.state, "test", self.config.eval.max_tracks)

  @functools.cached_property
  def validation_all_tags(self) -> Embeddings:
    return Embeddings.of_split(self.setup, self.state, "validation", self.config.eval.prototype_tracks)

  @functools.cached_property
  def test(self) -> Embeddings:
    return self._visible(self.test_all_tags)

  @functools.cached_property
  def validation(self) -> Embeddings:
    return self._visible(self.validation_all_tags)

  @functools.cached_property
  def prototypes(self) -> np.ndarray | None:
    """[T, D] tag prototypes (mean training embedding of each tag) for losses that tag by
    them; None for the others."""
    if not self.setup.loss_spec.needs_prototypes:
      return None
    train = Embeddings.of_split(self.setup, self.state, "train", self.config.eval.prototype_tracks)
    if conditions.of(self.config) != conditions.DEFAULT:  # only the labels the run trained with
      keep, labels = conditions.training_view(conditions.of(self.config), self.held_out, train.track_id, train.labels)
      train = dataclasses.replace(train, song=train.song[keep], labels=labels[keep])
    return prototypes(train)

  @property
  def category_masks(self) -> np.ndarray | None:
    """[S, D] subspace masks of a disentangled model, None for the others."""
    return self.setup.objective.category_masks if self.config.loss.disentangled else None


def prototypes(train: Embeddings) -> np.ndarray:
  """[T, D] mean training embedding of each tag (zeros for tags without tracks)."""
  lab = train.labels
  return ((train.song.T @ lab) / np.maximum(lab.sum(0), 1)[None]).T


# eval.json's wall-clock figures (training_time's and run.run's eval_time_s): they vary with
# the machine's load, not with the run, so comparisons of two runs' numbers leave them out.
WALL_TIMES = ("train_time_s", "time_per_epoch_s", "eval_time_s")


def training_time(ctx: Context) -> dict:
  meta = ctx.meta
  epoch_times = meta.get("epoch_times", [])
  return {"train_time_s": meta.get("train_time_s"),
          "epochs": meta["schedule"]["best_epoch"] + 1 if meta.get("schedule") else None,
          "epochs_run": meta.get("epoch"),
          "time_per_epoch_s": float(np.median(epoch_times)) if epoch_times else None,
          "steps_to_best": meta.get("best_step"), "steps_run": meta.get("steps_run"),
          **_best_figure(ctx.config.train.get("select_by", "loss"), meta)}


def _best_figure(select_by: str, meta: dict) -> dict:
  """The best validation figure of the schedule: val_loss_best or val_quality_best."""
  best = schedule.shown(select_by, meta["schedule"]["best"]) if meta.get("schedule") else None
  return {"val_loss_best" if select_by == "loss" else "val_quality_best": best, "selected_by": select_by}


def retrieval(ctx: Context) -> dict:
  """Nearest neighbours by config.eval.distance (cosine, euclidean or dot): the paper's
  recall@K, precision@1 / R-precision / MAP@R, and the embedding's norm statistics (a
  vanilla classifier's unnormalised embedding can collapse in norm or direction)."""
  song, labels, distance = ctx.test.song, ctx.test.labels, ctx.config.eval.distance
  return {"recall_at_k": metrics.recall_at_k(song, labels, distance=distance),
          "recall_at_k_chance": metrics.chance_recall_at_k(labels),
          **metrics.ranking_metrics(song, labels, distance=distance),
          "embedding_stats": metrics.embedding_stats(song)}


def tagging(ctx: Context) -> dict:
  scores = ctx.setup.tag_scores(ctx.state, ctx.test.song, ctx.prototypes)
  return metrics.tagging_metrics(ctx.test.labels, scores, ctx.setup.tag_category, ctx.categories)


def _per_category(emb, triplets_by_cat, masks, categories):
  out = {c: metrics.triplet_accuracy(emb, triplets_by_cat[i], None if masks is None else masks[i])
         for i, c in enumerate(categories)}
  vals = [v for v in out.values() if v is not None]
  out["overall"] = float(np.mean(vals)) if vals else None
  return out


def _standard_errors(acc: dict, counts: list[int], categories) -> dict:
  """Binomial standard error sqrt(p (1 - p) / n) of each category's triplet accuracy (n
  triplets), and of the overall mean of the categories."""
  out = {c: None if acc[c] is None else float(np.sqrt(acc[c] * (1 - acc[c]) / n)) for c, n in zip(categories, counts)}
  known = [v for v in out.values() if v is not None]
  out["overall"] = float(np.sqrt(np.sum(np.square(known))) / len(known)) if known else None
  return out


def tag_triplets(ctx: Context) -> dict:
  test, tag_category = ctx.test, ctx.setup.tag_category
  by_cat = [metrics.sample_tag_triplets(test.labels, tag_category, i, ctx.config.eval.triplets_per_category)
            for i in range(len(ctx.categories))]
  out = {"complete": _per_category(test.song, by_cat, None, ctx.categories),
         "subspace": None if ctx.category_masks is None
         else _per_category(test.song, by_cat, ctx.category_masks, ctx.categories)}
  return {"triplet_acc": out, "tag_triplets_per_category": [len(t) for t in by_cat]}


def track_triplets(ctx: Context, seed: int = 0) -> dict:
  """Anchor and positive: two windows of one track; negative: a window of another."""
  windows = ctx.test.windows
  have_two = [i for i, w in enumerate(windows) if len(w) >= 2]
  if len(have_two) < 2:
    return {"track_triplet_acc": None}
  rng = np.random.default_rng(seed)
  firsts = np.stack([windows[i][0] for i in have_two])
  seconds = np.stack([windows[i][1] for i in have_two])
  n = len(have_two)
  others = (np.arange(n) + rng.integers(1, n, n)) % n
  emb = np.concatenate([firsts, seconds])
  trip = np.stack([np.arange(n), n + np.arange(n), others], 1)
  return {"track_triplet_acc": metrics.triplet_accuracy(emb, trip)}


def factor_triplets(ctx: Context) -> dict:
  """The generator's factor-controlled triplets (split test_triplets, synth_music only)."""
  if "test_triplets" not in ctx.setup.builder.info.splits:
    return {}
  emb = Embeddings.of_split(ctx.setup, ctx.state, "test_triplets")
  rows = {}
  for i, (tid, role, cat) in enumerate(emb.triplet):
    rows.setdefault((cat, tid), [None] * 3)[role] = i
  by_cat = [np.array([r for (c, _), r in sorted(rows.items()) if c == i and None not in r], int).reshape(-1, 3)
            for i in range(len(ctx.categories))]
  counts = [len(t) for t in by_cat]
  cats = ctx.categories
  out = {"factor_triplet_acc": _per_category(emb.song, by_cat, None, cats), "factor_triplets_per_category": counts}
  out["factor_triplet_acc_se"] = _standard_errors(out["factor_triplet_acc"], counts, cats)
  if ctx.category_masks is not None:
    out["factor_triplet_acc_subspace"] = _per_category(emb.song, by_cat, ctx.category_masks, cats)
    out["factor_triplet_acc_subspace_se"] = _standard_errors(out["factor_triplet_acc_subspace"], counts, cats)
  return out


def shortcut(ctx: Context) -> dict:
  """How much each category subspace knows about every category (the shortcut probe).

  For each space (each category's subspace of a disentangled model; the complete space
  of any model), every tag's prototype is its mean validation embedding in that space,
  and the test tracks are scored by cosine to it; the number is the macro ROC-AUC of
  those scores over each category's tags. A disentangled subspace scores high on its
  own category and near 0.5 on the others; a subspace that scores high on another
  category has learned it as a shortcut (tags are correlated in synth_music's default
  preset, not in :decorrelated).
  """
  val, test, setup = ctx.validation, ctx.test, ctx.setup
  spaces = {"complete": np.ones(test.song.shape[1], np.float32)}
  if ctx.category_masks is not None:
    spaces.update(zip(ctx.categories, ctx.category_masks))
  out = {}
  for space, mask in spaces.items():
    protos = prototypes(dataclasses.replace(val, song=val.song * mask))  # [T, D]
    scores = losses.l2_normalize(test.song * mask) @ losses.l2_normalize(protos).T
    out[space] = metrics.tagging_metrics(test.labels, scores, setup.tag_category,
                                         ctx.categories)["roc_auc_per_category"]
  return {"shortcut_auc": out}


def human_triplets(ctx: Context, min_agreement: float = 0.9) -> dict:
  """Triplets of a dim-sim style CSV (config.human_triplets): columns anchor, positive,
  negative (clip ids of the test split) and agreement; rows below `min_agreement` or
  naming unknown clips are skipped. Nothing without the file."""
  path = ctx.config.human_triplets
  if not path:
    return {}
  test = ctx.test
  index = {t: i for i, t in enumerate(test.track_id)}
  rows, unknown = [], 0
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = {"anchor", "positive", "negative"} - set(reader.fieldnames or ())
    if missing:
      raise errors.ConfigError(f"config.human_triplets={path} lacks the column(s) {', '.join(sorted(missing))}: "
                               "give anchor,positive,negative[,agreement]")
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


def open_set(ctx: Context, draws: int = 5) -> dict:
  """The tags an open-set run held out of training (conditions.py), on the test split;
  nothing for other runs. Relevance and triplets use the held-out tags only:

  - open_recall_at_k: recall@K where a neighbour is relevant when it shares a held-out
    tag with the query (queries: tracks with one), beside its exact chance value;
  - open_triplet_acc: tag triplets of held-out tags, complete space and the tag
    category's subspace (disentangled models);
  - few_shot_roc_auc: each held-out tag's prototype is the mean embedding of k validation
    tracks with it (k = 1, 5: the mean over `draws` random draws; "all": every one), the
    test tracks are scored by cosine to it (in the tag's subspace for disentangled
    models), macro ROC-AUC over the held-out tags. Every model is scored this way, a
    classifier too: it has no output for a tag it never saw.
  """
  held = ctx.held_out
  if not held.any():
    return {}
  test, val, setup = ctx.test_all_tags, ctx.validation_all_tags, ctx.setup
  labels, cats = test.labels[:, held], setup.tag_category[held]
  by_cat = [metrics.sample_tag_triplets(labels, cats, i, ctx.config.eval.triplets_per_category)
            for i in range(len(ctx.categories))]
  masks = np.asarray(setup.objective.tag_masks)[held]  # [H, D]: all ones for an entangled model
  rng = np.random.default_rng(0)
  few_shot = {}
  for k in (1, 5, "all"):
    aucs = []
    for _ in range(1 if k == "all" else draws):
      protos = np.zeros((held.sum(), test.song.shape[1]))
      for j, t in enumerate(np.flatnonzero(held)):
        have = np.flatnonzero(val.labels[:, t])
        chosen = have if k == "all" else rng.choice(have, min(k, len(have)), replace=False)
        protos[j] = val.song[chosen].mean(0) if len(chosen) else 0.0
      scores = np.stack([losses.l2_normalize(test.song * m) @ losses.l2_normalize(p * m)
                         for p, m in zip(protos, masks)], 1)
      aucs.append(metrics.tagging_metrics(labels, scores, cats, ctx.categories)["roc_auc"])
    few_shot[str(k)] = float(np.mean(aucs))
  return {"open_set_tags": [setup.tag_names[i] for i in np.flatnonzero(held)],
          "open_recall_at_k": metrics.recall_at_k(test.song, labels),
          "open_recall_at_k_chance": metrics.chance_recall_at_k(labels),
          "open_triplet_acc": {"complete": _per_category(test.song, by_cat, None, ctx.categories),
                               "subspace": None if ctx.category_masks is None
                               else _per_category(test.song, by_cat, ctx.category_masks, ctx.categories)},
          "few_shot_roc_auc": few_shot}


EVALUATORS = {
    "training_time": training_time,
    "retrieval": retrieval,
    "tagging": tagging,
    "tag_triplets": tag_triplets,
    "track_triplets": track_triplets,
    "factor_triplets": factor_triplets,
    "shortcut": shortcut,
    "human_triplets": human_triplets,
    "open_set": open_set,
}


VALIDATION_CACHE_BYTES = 256 << 20


def _first_windows_of_validation(setup) -> tuple[list[dict], dict]:
  """The window batches of validation_quality (the first window of each validation track)
  and the tracks' metadata: read once per run and kept in memory (they are the same every
  epoch), unless the windows exceed VALIDATION_CACHE_BYTES (a large real corpus): then
  read again each time."""
  cached = getattr(setup, "_validation_cache", None)
  if cached is not None:
    return cached
  from musicrep_jax import input_pipeline  # pylint: disable=import-outside-toplevel  # TensorFlow: not for search
  meta = {}
  batches = list(input_pipeline.eval_windows(setup.builder, "validation", crop_len=setup.crop_len,
                                             batch_size=setup.config.eval.batch_size, max_windows=1, meta=meta))
  if sum(b["audio"].nbytes for b in batches) <= VALIDATION_CACHE_BYTES:
    setup._validation_cache = (batches, meta)  # pylint: disable=protected-access
  return batches, meta


def validation_quality(setup, state) -> dict:
  """Cheap quality figures for every epoch, on the validation split (the first window of
  each track): recall@1, macro ROC-AUC of tagging on its second half (prototype models
  take their prototypes from the first half), and val_quality, their mean: the one figure
  by which config.train.select_by="quality" stops and selects every model. The mean of
  the paper's two headline tasks, with equal weight, since a loss can favour one of them
  (a classifier tags, a metric loss retrieves)."""
  batches, meta = _first_windows_of_validation(setup)
  song, _ = song_embeddings(setup, state, batches)
  val = Embeddings(song, [], conditions.visible(meta["labels"], setup.held_out), meta["track_id"], meta["triplet"])
  half = len(val.song) // 2
  protos = None
  if setup.loss_spec.needs_prototypes:
    protos = prototypes(dataclasses.replace(val, song=val.song[:half], labels=val.labels[:half]))
  scores = setup.tag_scores(state, val.song[half:], protos)
  tagging_ = metrics.tagging_metrics(val.labels[half:], scores, setup.tag_category, setup.categories)
  r1 = metrics.recall_at_k(val.song, val.labels, ks=(1,))["1"]
  return {"val_recall_at_1": r1, "val_roc_auc": tagging_["roc_auc"], "val_quality": (r1 + tagging_["roc_auc"]) / 2}


def run_tasks(ctx: Context) -> dict:
  """The numbers of the evaluators named in config.eval.tasks, in that order."""
  out = {}
  for name in ctx.config.eval.tasks:
    out.update(EVALUATORS[name](ctx))
  return out


def evaluate(setup, state, meta: dict, workdir: str | None = None) -> dict:
  """The tasks of config.eval.tasks, in that order; the dict written to eval.json. With
  `workdir`, the test split's song embeddings and labels (every tag) go to
  workdir/test_embeddings.npz (for plots), and a prototype-tagging model's tag prototypes
  to workdir/prototypes.npy (for `search tag`; when tagging is among the tasks)."""
  ctx = Context(setup, state, meta)
  out = run_tasks(ctx)
  if workdir and ("prototypes" in ctx.__dict__ or "tagging" in ctx.config.eval.tasks) and ctx.prototypes is not None:
    with progress.path(os.path.join(workdir, "prototypes.npy")).open("wb") as f:
      np.save(f, ctx.prototypes.T)
  if "test_all_tags" in ctx.__dict__:  # computed by a task
    test = ctx.test_all_tags
    out["test_tracks"] = len(test.song)
    if workdir:
      with progress.path(os.path.join(workdir, "test_embeddings.npz")).open("wb") as f:
        np.savez(f, embeddings=test.song, labels=test.labels,
               track_id=np.array(test.track_id), tag_category=setup.tag_category, dims=setup.dim_category,
               disentangled=bool(setup.config.loss.disentangled), held_out=ctx.held_out)
  return out


def flatten(results: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a/b": 1}: the name of every number of eval.json."""
  out = {}
  for k, v in results.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out
