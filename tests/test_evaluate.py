"""Evaluators, tag scoring, the plateau schedule, checkpoint repair and the error policy,
as units: each against numbers written from its definition, without training."""

import json

import jax
import numpy as np
import pytest

from musicrep_jax import checkpointing, configlib, errors, evaluate, model, objective, schedule
from musicrep_jax.data import features

RNG = np.random.default_rng(0)
VOCAB = {"genre": ["a", "b", "c"], "mood": ["d", "e"], "instrument": ["f", "g"], "era": ["h", "i"]}


class _Setup:
  """A real model of the smoke preset without a dataset, plus what evaluators read."""

  def __init__(self, name="proxy_dis", **overrides):
    config = configlib.load(name, "smoke")
    for k, v in overrides.items():
      section, key = k.split(".")
      config[section][key] = v
    self.model = model.Model(config, VOCAB)

  def __getattr__(self, name):
    return getattr(self.model, name)


def _context(name="proxy_dis", n=40, meta=None, **overrides):
  setup = _Setup(name, **overrides)
  ctx = evaluate.Context(setup, None, meta or {})  # no task here reads the weights
  d = sum(setup.config.model.subspace_dims)
  labels = np.zeros((n, len(setup.tag_names)), bool)
  for c in range(4):  # one tag per category for every track
    tags = np.flatnonzero(setup.tag_category == c)
    labels[np.arange(n), RNG.choice(tags, n)] = True
  song = RNG.normal(size=(n, d)).astype(np.float32)
  windows = [np.stack([s, s + 0.01 * RNG.normal(size=d)]).astype(np.float32) for s in song]
  ctx.test = evaluate.Embeddings(song, windows, labels, [f"t{i}" for i in range(n)], np.full((n, 3), -1))
  return ctx


@pytest.mark.parametrize("select_by,best,key,shown", [("loss", 0.5, "val_loss_best", 0.5),
                                                      ("quality", -0.8, "val_quality_best", 0.8)])
def test_training_time_reads_the_schedule(select_by, best, key, shown):
  meta = {"epoch": 5, "train_time_s": 50.0, "epoch_times": [12.0, 9.0, 10.0, 11.0, 8.0],
          "schedule": {**schedule.init(0.1), "best": best, "best_epoch": 2}, "best_step": 30, "steps_run": 50}
  ctx = _context(meta=meta)
  ctx.config.train.select_by = select_by
  out = evaluate.training_time(ctx)
  assert out == {"train_time_s": 50.0, "epochs": 3, "epochs_run": 5, "time_per_epoch_s": 10.0, key: shown,
                 "selected_by": select_by, "steps_to_best": 30, "steps_run": 50}


def test_retrieval_is_recall_at_k_of_the_test_embeddings():
  ctx = _context()
  got = evaluate.retrieval(ctx)["recall_at_k"]
  e = ctx.test.song / np.linalg.norm(ctx.test.song, axis=1, keepdims=True)
  sim = e @ e.T
  np.fill_diagonal(sim, -np.inf)
  nn = np.argsort(-sim, axis=1, kind="stable")
  lab = ctx.test.labels
  for k in (1, 2, 4, 8):
    want = np.mean([(lab[nn[i, :k]].any(0) & lab[i]).sum() / lab[i].sum() for i in range(len(lab))])
    assert got[str(k)] == pytest.approx(want)


def test_track_triplets_and_tag_triplets_on_planted_structure():
  ctx = _context()
  # Two windows of a track are near-identical; other tracks are random: accuracy 1.
  assert evaluate.track_triplets(ctx)["track_triplet_acc"] == 1.0
  # Plant each category's tag in its own subspace: a tag's tracks share one direction there.
  d_cat = ctx.setup.dim_category
  song = RNG.normal(size=ctx.test.song.shape).astype(np.float32) * 0.05
  for c in range(4):
    tags = np.flatnonzero(ctx.setup.tag_category == c)
    dims = np.flatnonzero(d_cat == c)
    directions = RNG.normal(size=(len(tags), len(dims)))
    for j, t in enumerate(tags):
      song[np.ix_(ctx.test.labels[:, t], dims)] += directions[j]
  ctx.test.song = song
  out = evaluate.tag_triplets(ctx)
  assert out["tag_triplets_per_category"] == [200] * 4
  assert all(out["triplet_acc"]["subspace"][c] > 0.95 for c in features.CATEGORIES)
  assert out["triplet_acc"]["complete"]["overall"] < out["triplet_acc"]["subspace"]["overall"]
  entangled = _context("proxy")
  entangled.test = ctx.test
  assert evaluate.tag_triplets(entangled)["triplet_acc"]["subspace"] is None  # no subspaces to test


def test_human_triplets_read_the_csv_and_skip_what_they_cannot_use(tmp_path):
  ctx = _context()
  path = tmp_path / "human.csv"
  rows = ["anchor,positive,negative,agreement", "t0,t0,t1,1.0", "t2,t2,t3,0.5", "t4,nope,t5,1.0"]
  path.write_text("\n".join(rows) + "\n")
  ctx.config.human_triplets = str(path)
  out = evaluate.human_triplets(ctx)
  assert out == {"human_triplet_acc": 1.0, "human_triplets_used": 1, "human_triplets_unknown_ids": 1}
  path.write_text("a,b,c\n")
  with pytest.raises(errors.ConfigError, match="lacks the column"):
    evaluate.human_triplets(ctx)


def test_only_the_configured_tasks_run():
  ctx = _context()
  ctx.config.eval.tasks = ("training_time", "track_triplets")
  out = evaluate.run_tasks(ctx)
  assert set(out) == {"train_time_s", "epochs", "epochs_run", "time_per_epoch_s", "val_quality_best", "selected_by",
                      "steps_to_best", "steps_run", "track_triplet_acc"}
  ctx.config.eval.tasks = ("retrieval", "nope")
  with pytest.raises(errors.ConfigError, match="config.eval.tasks names 'nope'"):
    configlib.check(ctx.config, devices=1)


def test_flatten_names_every_number():
  assert evaluate.flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}}) == {"a": 1, "b/c": 2, "b/d/e": None}


def _np_unit(x, axis=-1):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


@pytest.mark.parametrize("name", objective.NAMES)
@pytest.mark.parametrize("disentangled", [False, True])
def test_tag_scores_of_every_loss_match_numpy(name, disentangled):
  dims = (3, 2, 4, 3)
  d = sum(dims)
  tag_category = np.array([0, 0, 1, 2, 2, 3])
  cfg = configlib.base("smoke").loss
  cfg.name, cfg.disentangled = name, disentangled
  obj = objective.Objective(cfg, dims, tag_category)
  emb = RNG.normal(size=(5, d)).astype(np.float32)
  w = RNG.normal(size=(d, 6)).astype(np.float32)
  b = RNG.normal(size=6).astype(np.float32)
  protos = RNG.normal(size=(6, d)).astype(np.float32)
  masks = np.stack([(np.repeat(np.arange(4), dims) == c) for c in tag_category]).astype(np.float32) \
      if disentangled else np.ones((6, d), np.float32)
  got = np.asarray(obj.tag_scores(emb, w, b, protos if obj.spec.needs_prototypes else None))
  want = np.zeros((5, 6))
  for t in range(6):
    x = emb * masks[t]
    if name in ("triplet", "triplet_bh", "triplet_all", "multi_similarity", "supcon"):  # cosine to the prototype, in the tag's subspace
      want[:, t] = _np_unit(x) @ _np_unit(protos[t] * masks[t])
    elif name == "proxy":  # normalised embedding . unnormalised proxy
      want[:, t] = _np_unit(x) @ (w[:, t] * masks[t])
    elif name == "proxy_nca":  # cosine to the proxy
      want[:, t] = _np_unit(x) @ _np_unit(w[:, t] * masks[t])
    else:  # vanilla: f(x) . w + b, whole space
      want[:, t] = emb @ w[:, t] + b[t]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  probs = obj.tag_probabilities(emb, w, b, protos if obj.spec.needs_prototypes else None)
  np.testing.assert_allclose(probs, 1 / (1 + np.exp(-want)) if obj.spec.logits else want, rtol=1e-4, atol=1e-5)


def test_plateau_schedule_reduces_then_stops():
  s = schedule.init(1.0)
  history = []
  for epoch, val in enumerate([5, 4, 4.5, 4.2, 3.9, 4.0, 4.1, 4.0, 4.0]):
    s = schedule.update(s, val, epoch, factor=5.0, patience=2, max_reductions=1)
    history.append((s["lr"], s["best_epoch"], s["stop"]))
  # epochs 2-3 do not improve on 4: lr / 5 after epoch 3; epoch 4 improves; epochs 5-6 do
  # not: no reduction left, so the run stops after epoch 6.
  assert history == [(1.0, 0, False), (1.0, 1, False), (1.0, 1, False), (0.2, 1, False), (0.2, 4, False),
                     (0.2, 4, False), (0.2, 4, True), (0.2, 4, True), (0.2, 4, True)]
  assert schedule.init(0.3) == dict(lr=0.3, best=float("inf"), best_epoch=-1, bad_epochs=0, reductions=0, stop=False)


def _state(v):
  return {"step": np.int32(v), "params": {"w": np.full((3,), v, np.float32)}}


def test_best_checkpoint_repair_after_a_kill_between_the_two_saves(tmp_path):
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0))
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  ckpt.save(10, _state(10), {"epoch": 1, "best_step": 10}, best=True)
  ckpt.save(20, _state(20), {"epoch": 2, "best_step": 20})  # killed before best/ got step 20
  ckpt.wait()
  ckpt.close()
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  ckpt.repair_best(20, 20, abstract)
  state, meta = ckpt.restore(abstract, "best")
  assert int(state["step"]) == 20 and meta["best_step"] == 20 and float(state["params"]["w"][0]) == 20
  # A best/ step newer than the resumed step (the rerun redoes it) is dropped.
  ckpt.save(30, _state(30), {"epoch": 3, "best_step": 30}, best=True)
  ckpt.wait()
  ckpt.repair_best(20, 20, abstract)
  assert ckpt.best.all_steps() == [20]
  ckpt.close()


def test_only_the_projects_errors_are_reported_as_user_errors(capsys, monkeypatch):
  monkeypatch.delenv("MUSICREP_JAX_DEBUG", raising=False)
  with pytest.raises(SystemExit) as e:
    errors.exit_on_user_error(lambda: (_ for _ in ()).throw(errors.ConfigError("config.x=1 is wrong")), hard=False)
  assert e.value.code == 2 and capsys.readouterr().err == "error: config.x=1 is wrong\n"
  # A ValueError from inside a dependency is a bug: it keeps its traceback.
  with pytest.raises(ValueError, match="cannot reshape"):
    errors.exit_on_user_error(lambda: np.zeros(3).reshape(2, 2))
  with pytest.raises(ValueError):
    errors.exit_on_user_error(lambda: json.loads("{"))
  monkeypatch.setenv("MUSICREP_JAX_DEBUG", "1")  # debugging: a user error shows its traceback
  with pytest.raises(errors.ConfigError):
    errors.exit_on_user_error(lambda: (_ for _ in ()).throw(errors.ConfigError("x")))


def test_a_new_loss_is_one_function_and_one_table_entry(monkeypatch):
  """What CONTRIBUTING.md promises: with a table entry, config checks, training and the
  evaluation's tagging accept a loss nothing else knows about."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def soft_margin(o, rng, emb, w, b, labels):  # a made-up loss: softplus of the proxy logits' margin
    logits = objective.losses.tag_logits(emb, w, None, o.tag_masks)
    return jnp.mean(jax.nn.softplus(jnp.where(labels > 0, -logits, logits))), {}

  monkeypatch.setitem(objective.LOSSES, "soft_margin", objective.LossSpec(
      soft_margin, objective.LOSSES["proxy"].tag_scores, needs_prototypes=False, logits=True))
  config = configlib.load("proxy_dis", "smoke")
  config.loss.name = "soft_margin"
  configlib.check(config, devices=1)
  m = model.Model(config, VOCAB)
  state = m.init_state(0)
  emb = RNG.normal(size=(4, sum(config.model.subspace_dims))).astype(np.float32)
  labels = np.zeros((4, len(m.tag_names)), np.float32)
  labels[:, [0, 3]] = 1
  loss, _ = m.objective(jax.random.key(0), emb[:, None], state["params"]["tag_weights"], state["params"]["tag_bias"],
                        labels)
  assert np.isfinite(float(loss))
  probs = m.tag_scores(state, emb, probabilities=True)
  assert probs.shape == (4, len(m.tag_names)) and ((probs > 0) & (probs < 1)).all()


def _planted(ctx, n, rng, leak=None):
  """Embeddings whose category-c subspace holds a direction per tag of c (and, with
  leak=(s, c), subspace s also holds category c's directions)."""
  labels = np.zeros((n, len(ctx.setup.tag_names)), bool)
  song = rng.normal(size=(n, sum(ctx.config.model.subspace_dims))).astype(np.float32) * 0.3
  d_cat, t_cat = ctx.setup.dim_category, ctx.setup.tag_category
  for c in range(4):
    tags = np.flatnonzero(t_cat == c)
    labels[np.arange(n), rng.choice(tags, n)] = True
    for space in [c] + ([leak[0]] if leak and leak[1] == c else []):
      dims = np.flatnonzero(d_cat == space)
      directions = np.random.default_rng(100 + 10 * c + space).normal(size=(len(tags), len(dims)))
      for j, t in enumerate(tags):
        song[np.ix_(labels[:, t], dims)] += directions[j]
  return evaluate.Embeddings(song, [], labels, [f"t{i}" for i in range(n)], np.full((n, 3), -1))


def test_shortcut_probe_finds_a_category_learned_in_another_subspace():
  rng = np.random.default_rng(1)  # its own data, whatever ran before it in this worker
  ctx = _context()
  ctx.validation, ctx.test = _planted(ctx, 120, rng), _planted(ctx, 120, rng)
  auc = evaluate.shortcut(ctx)["shortcut_auc"]
  assert set(auc) == {"complete", *features.CATEGORIES}
  for space in features.CATEGORIES:
    for cat in features.CATEGORIES:
      assert (auc[space][cat] > 0.95) if space == cat else (abs(auc[space][cat] - 0.5) < 0.15), (space, cat, auc)
  # The complete space holds every category's directions among the others' (0.86-0.99 over 30 seeds of this data).
  assert all(auc["complete"][c] > 0.8 for c in features.CATEGORIES)
  # The mood subspace also encodes genre: the probe shows it.
  ctx = _context()
  ctx.validation, ctx.test = _planted(ctx, 120, rng, leak=(1, 0)), _planted(ctx, 120, rng, leak=(1, 0))
  assert evaluate.shortcut(ctx)["shortcut_auc"]["mood"]["genre"] > 0.9


def test_factor_triplet_standard_errors_are_binomial():
  se = evaluate._standard_errors({"genre": 0.8, "mood": 0.5, "instrument": None, "era": 1.0, "overall": 0.77},
                                 [100, 400, 0, 50], features.CATEGORIES)  # pylint: disable=protected-access
  assert se["genre"] == pytest.approx(0.04) and se["mood"] == pytest.approx(0.025) and se["era"] == 0.0
  assert se["instrument"] is None and se["overall"] == pytest.approx(np.sqrt(0.04**2 + 0.025**2) / 3)


def test_plateau_threshold_counts_small_improvements_as_none():
  s = schedule.init(1.0)
  for epoch, val in enumerate([10.0, 9.95, 9.92]):  # under 1% better each time: not improvements
    s = schedule.update(s, val, epoch, factor=5.0, patience=2, max_reductions=1, threshold=0.01)
  assert s["best"] == 10.0 and s["lr"] == 0.2 and s["reductions"] == 1
  s = schedule.update(s, 9.8, 3, factor=5.0, patience=2, max_reductions=1, threshold=0.01)  # 2% better
  assert s["best"] == 9.8 and s["best_epoch"] == 3


@pytest.mark.parametrize("max_windows,max_tracks", [(0, 0), (1, 5)])
def test_eval_windows_read_the_tracks_metadata_in_the_same_pass(smoke_builder, max_windows, max_tracks):
  """The windows and the metadata of a split come from one read: every window of track i
  in order, and the labels, ids and triplet fields of the same tracks as a plain read of
  the split gives them."""
  from musicrep_jax import input_pipeline  # pylint: disable=import-outside-toplevel
  crop = 16_000
  meta = {}
  batches = list(input_pipeline.eval_windows(smoke_builder, "test", crop_len=crop, batch_size=7, meta=meta,
                                             max_windows=max_windows, max_tracks=max_tracks))
  tracks = list(smoke_builder.as_dataset(split="test", shuffle_files=False).as_numpy_iterator())
  tracks = tracks[:max_tracks] if max_tracks else tracks
  want = np.concatenate([np.full(max(len(t["audio"]) // crop, 1) if not max_windows else
                                 min(max(len(t["audio"]) // crop, 1), max_windows), i) for i, t in enumerate(tracks)])
  got = np.concatenate([b["track"][b["valid"]] for b in batches])
  assert np.array_equal(got, want) and all(set(b) == {"audio", "track", "valid"} for b in batches)
  assert np.array_equal(meta["labels"], np.stack([t["tags"] for t in tracks]).astype(np.float32))
  assert meta["labels"].dtype == np.float32
  assert meta["track_id"] == [t["track_id"].decode() for t in tracks]
  assert np.array_equal(meta["triplet"], np.stack([t["triplet"] for t in tracks]))
