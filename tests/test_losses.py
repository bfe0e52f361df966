"""Each loss against a numpy reference written from its formula; finite gradients at degenerate inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax import losses

RNG = np.random.default_rng(0)


def np_cos(a, b):
  return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def np_sigmoid_bce(z, y):
  p = 1 / (1 + np.exp(-z))
  return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_subspace_masks_are_disjoint_blocks():
  m = losses.subspace_masks((2, 3, 1, 2))
  assert m.shape == (4, 8)
  np.testing.assert_array_equal(m.sum(0), np.ones(8))
  np.testing.assert_array_equal(m[1], [0, 0, 1, 1, 1, 0, 0, 0])


@pytest.mark.parametrize("masked", [False, True])
def test_triplet_loss_matches_numpy(masked):
  a, p, n = (RNG.normal(size=(6, 8)) for _ in range(3))
  mask = losses.subspace_masks((2, 2, 2, 2))[RNG.integers(0, 4, 6)] if masked else np.ones((6, 8))
  ref = np.maximum(0, np_cos(a * mask, n * mask) - np_cos(a * mask, p * mask) + 0.1)
  ours = losses.triplet_loss(a, p, n, 0.1, mask if masked else None)
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_label_triplet_sampling_respects_labels():
  labels = (RNG.random((32, 10)) < 0.3).astype(np.float32)
  pos, neg, tag, valid = map(np.asarray, losses.sample_label_triplets(jax.random.key(3), jnp.asarray(labels)))
  for i in np.flatnonzero(valid):
    assert labels[i, tag[i]] == 1 and labels[pos[i], tag[i]] == 1 and pos[i] != i
    assert labels[neg[i], tag[i]] == 0
  counts = labels.sum(0)
  usable = (labels > 0) & (counts > 1) & (counts < 32)
  np.testing.assert_array_equal(valid, usable.any(1))


def test_label_triplet_loss_in_tag_subspace_matches_numpy():
  emb = RNG.normal(size=(16, 8)).astype(np.float32)
  labels = (RNG.random((16, 6)) < 0.4).astype(np.float32)
  tag_masks = losses.subspace_masks((2, 2, 2, 2))[[0, 0, 1, 2, 3, 3]]
  key = jax.random.key(7)
  loss, valid = map(np.asarray, losses.label_triplet_loss(key, emb, labels, tag_masks, 0.1))
  pos, neg, tag, _ = map(np.asarray, losses.sample_label_triplets(key, jnp.asarray(labels)))
  m = tag_masks[tag]
  ref = np.maximum(0, np_cos(emb * m, emb[neg] * m) - np_cos(emb * m, emb[pos] * m) + 0.1)
  np.testing.assert_allclose(loss[valid], ref[valid], atol=1e-5)
  assert np.all(loss[~valid] == 0)


def test_batch_hard_matches_brute_force():
  emb = RNG.normal(size=(10, 8)).astype(np.float32)
  labels = (RNG.random((10, 6)) < 0.35).astype(np.float32)
  tag_cat = np.array([0, 0, 1, 2, 3, 3])
  masks = losses.subspace_masks((2, 2, 2, 2))
  loss, valid = map(np.asarray, losses.batch_hard_triplet_loss(emb, labels, tag_cat, masks, 0.1))
  for s in range(4):
    ls = labels[:, tag_cat == s] > 0
    for i in range(10):
      pos = [j for j in range(10) if j != i and (ls[i] & ls[j]).any()]
      neg = [j for j in range(10) if not (ls[i] & ls[j]).any() and ls[j].any()]
      assert valid[i, s] == bool(pos and neg)
      if pos and neg:
        cos = lambda j: np_cos(emb[i] * masks[s], emb[j] * masks[s])
        ref = max(0.0, max(cos(j) for j in neg) - min(cos(j) for j in pos) + 0.1)
        np.testing.assert_allclose(loss[i, s], ref, atol=1e-5)


def test_track_triplet_negative_is_another_track():
  a, p = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))
  key = jax.random.key(1)
  shift = int(jax.random.randint(key, (), 1, 5))
  ref = np.maximum(0, np_cos(a, np.roll(p, shift, 0)) - np_cos(a, p) + 0.1)
  np.testing.assert_allclose(losses.track_triplet_loss(key, a, p, 0.1), ref, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_proxy_bce_matches_numpy(masked):
  emb, w = RNG.normal(size=(4, 8)), RNG.normal(size=(8, 5))
  y = (RNG.random((4, 5)) < 0.5).astype(np.float32)
  tag_masks = losses.subspace_masks((2, 2, 2, 2))[[0, 1, 1, 2, 3]] if masked else np.ones((5, 8))
  z = np.zeros((4, 5))
  for t in range(5):
    e = emb * tag_masks[t]
    z[:, t] = (e / np.linalg.norm(e, axis=-1, keepdims=True)) @ (w[:, t] * tag_masks[t])
  ref = np_sigmoid_bce(z, y).sum(-1)
  np.testing.assert_allclose(losses.proxy_bce_loss(emb, w, y, tag_masks if masked else None), ref, rtol=1e-5)


def test_vanilla_bce_matches_numpy():
  emb, w, b = RNG.normal(size=(4, 8)), RNG.normal(size=(8, 5)) * 0.3, RNG.normal(size=5)
  y = (RNG.random((4, 5)) < 0.5).astype(np.float32)
  ref = np_sigmoid_bce(emb @ w + b, y).sum(-1)
  np.testing.assert_allclose(losses.vanilla_bce_loss(emb, w, b, y), ref, rtol=1e-5)


DEGENERATE = {
    "identical": np.ones((6, 8), np.float32),
    "zeros": np.zeros((6, 8), np.float32),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_gradients_finite_at_degenerate_inputs(case):
  emb = jnp.asarray(DEGENERATE[case])
  masks = jnp.asarray(losses.subspace_masks((2, 2, 2, 2)))
  labels_none = jnp.ones((6, 4))  # every example has every tag: no valid triplet
  labels = jnp.asarray((RNG.random((6, 4)) < 0.5).astype(np.float32))
  tag_cat = np.array([0, 1, 2, 3])
  w = jnp.asarray(RNG.normal(size=(8, 4)), jnp.float32)
  fns = [
      lambda e: losses.triplet_loss(e, e, e, 0.1).sum(),
      lambda e: losses.triplet_loss(e, e, e, 0.1, masks[0]).sum(),
      lambda e: losses.label_triplet_loss(jax.random.key(0), e, labels, masks[tag_cat], 0.1)[0].sum(),
      lambda e: losses.label_triplet_loss(jax.random.key(0), e, labels_none, masks[tag_cat], 0.1)[0].sum(),
      lambda e: losses.batch_hard_triplet_loss(e, labels, tag_cat, masks, 0.1)[0].sum(),
      lambda e: losses.batch_hard_triplet_loss(e, labels_none, tag_cat, masks, 0.1)[0].sum(),
      lambda e: losses.batch_hard_triplet_loss(e, labels, tag_cat, masks, 0.1, 0.5)[0].sum(),
      lambda e: losses.all_triplet_loss(e, labels, masks[tag_cat], 0.1)[0].sum(),
      lambda e: losses.all_triplet_loss(e, labels_none, masks[tag_cat], 0.1)[0].sum(),
      lambda e: losses.multi_similarity_loss(e, labels, tag_cat, masks)[0].sum(),
      lambda e: losses.multi_similarity_loss(e, labels_none, tag_cat, masks)[0].sum(),
      lambda e: losses.supervised_contrastive_loss(e, labels, tag_cat, masks, 0.1)[0].sum(),
      lambda e: losses.supervised_contrastive_loss(e, labels_none, tag_cat, masks, 0.1)[0].sum(),
      lambda e: losses.track_triplet_loss(jax.random.key(0), e, e, 0.1).sum(),
      lambda e: losses.proxy_bce_loss(e, w, labels).sum(),
      lambda e: losses.proxy_bce_loss(e, w, labels, masks[tag_cat]).sum(),
      lambda e: losses.vanilla_bce_loss(e, w, jnp.zeros(4), labels).sum(),
  ]
  for i, f in enumerate(fns):
    value, grad = jax.value_and_grad(f)(emb)
    assert np.isfinite(value), i
    assert np.all(np.isfinite(grad)), i
  assert float(losses.label_triplet_loss(jax.random.key(0), emb, labels_none, masks[tag_cat])[1].sum()) == 0


@pytest.mark.parametrize("disentangled", [False, True])
def test_proxy_nca_matches_numpy(disentangled):
  emb, p = RNG.normal(size=(5, 8)), RNG.normal(size=(8, 6))
  y = (RNG.random((5, 6)) < 0.4).astype(np.float32)
  y[0, :2] = 1  # example 0 has every tag of category 0: those positives have no negative
  cat = np.array([0, 0, 1, 1, 2, 3])
  masks = losses.subspace_masks((2, 2, 2, 2))[cat] if disentangled else np.ones((6, 8))
  T = 0.2
  ref, ref_count = np.zeros(5), np.zeros(5, int)
  for n in range(5):
    terms = []
    for yy in np.flatnonzero(y[n]):
      def d(z):
        a = emb[n] * masks[yy]
        b = p[:, z] * masks[yy]
        return np.sum((a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 2)
      negs = [z for z in range(6) if not y[n, z] and (not disentangled or cat[z] == cat[yy])]
      if not negs:
        continue
      terms.append(-np.log(np.exp(-d(yy) / T) / sum(np.exp(-d(z) / T) for z in negs)))
    ref[n] = np.mean(terms) if terms else 0.0
    ref_count[n] = len(terms)
  loss, count = losses.proxy_nca_loss(emb, p, y, cat if disentangled else None, T, masks if disentangled else None)
  np.testing.assert_allclose(loss, ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(count, ref_count)
  if disentangled:
    assert ref_count[0] <= y[0].sum() - 2  # the two category-0 positives were excluded
  grad = jax.grad(lambda e: losses.proxy_nca_loss(e, p, np.ones((5, 6)), cat, T, masks)[0].sum())(jnp.asarray(emb))
  assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("track_weight", [0.0, 0.5])
def test_paper_sampler_picks_valid_triplets_each_embedded_as_its_own_input(track_weight):
  from musicrep_jax import configlib, objective  # pylint: disable=import-outside-toplevel
  cfg = configlib.base("smoke").loss
  cfg.name, cfg.sampler, cfg.disentangled, cfg.track_weight = "triplet", "paper", True, track_weight
  tag_category = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
  obj = objective.Objective(cfg, (2, 2, 2, 2), tag_category)
  rng = np.random.default_rng(0)
  n, crops = 24, objective.crops_per_track(cfg)
  labels = np.zeros((n, 9), np.float32)
  for c in range(4):
    tags = np.flatnonzero(tag_category == c)
    labels[np.arange(n), rng.choice(tags, n)] = 1
  assert objective.inputs_per_example(cfg) == (5 if track_weight else 3)
  cats = []
  for seed in range(20):
    index, sample = obj.select(jax.random.key(seed), jnp.asarray(labels), crops)
    index, tag, valid = np.asarray(index), np.asarray(sample["tag"]), np.asarray(sample["valid"])
    assert index.shape == (n, 5 if track_weight else 3) and valid.all()
    anchor, pos, neg = index[:, 0] // crops, index[:, 1] // crops, index[:, 2] // crops
    assert (anchor == np.arange(n)).all() and (index[:, :3] % crops == 0).all()
    assert labels[anchor, tag].all() and labels[pos, tag].all() and not labels[neg, tag].any()
    assert (pos != anchor).all()
    if track_weight:  # the anchor's second excerpt, and another track's second excerpt
      assert (index[:, 3] == np.arange(n) * crops + 1).all() and (index[:, 4] % crops == 1).all()
      assert (index[:, 4] // crops != np.arange(n)).all()
    cats += list(tag_category[tag])
  # A category first, then a tag of it: each category is drawn about equally often.
  counts = np.bincount(cats, minlength=4)
  assert counts.min() > 0.8 * len(cats) / 4, counts
  # The loss is the masked triplet loss of the three gathered inputs.
  emb = jnp.asarray(rng.normal(size=(n, index.shape[1], 8)).astype(np.float32))
  loss, _ = obj(jax.random.key(0), emb, None, None, jnp.asarray(labels), {"tag": tag, "valid": valid})
  masks = obj.tag_masks[tag]
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  e = np.asarray(emb)
  cos = lambda a, b: (unit(a * masks) * unit(b * masks)).sum(-1)
  want = np.maximum(cos(e[:, 0], e[:, 2]) - cos(e[:, 0], e[:, 1]) + cfg.margin, 0).mean()
  if track_weight:
    cos2 = lambda a, b: (unit(a) * unit(b)).sum(-1)
    want += track_weight * np.maximum(cos2(e[:, 0], e[:, 4]) - cos2(e[:, 0], e[:, 3]) + cfg.margin, 0).mean()
  assert float(loss) == pytest.approx(want, rel=1e-4)


def _groups(disentangled):
  """(tag -> group, [S, D] group masks) as objective.Objective builds them."""
  cat = np.array([0, 0, 1, 1, 2, 3])
  if disentangled:
    return cat, losses.subspace_masks((2, 2, 2, 2))
  return np.zeros(6, int), np.ones((1, 8), np.float32)


def _pairs(labels, group_of_tag, s, i):
  """Positives (j != i sharing a tag of group s) and negatives (sharing none, both tagged) of anchor i."""
  ls = labels[:, group_of_tag == s] > 0
  pos = [j for j in range(len(labels)) if j != i and (ls[i] & ls[j]).any()]
  neg = [j for j in range(len(labels)) if ls[i].any() and ls[j].any() and not (ls[i] & ls[j]).any()]
  return pos, neg


def _batch():
  emb = RNG.normal(size=(10, 8)).astype(np.float32)
  labels = (RNG.random((10, 6)) < 0.35).astype(np.float32)
  return emb, labels


@pytest.mark.parametrize("disentangled", [False, True])
def test_batch_hard_soft_margin_matches_hermans_formula(disentangled):
  emb, labels = _batch()
  group, masks = _groups(disentangled)
  loss, valid = map(np.asarray, losses.batch_hard_triplet_loss(emb, labels, group, masks, 0.1, 0.5))
  for s in range(len(masks)):
    for i in range(10):
      pos, neg = _pairs(labels, group, s, i)
      assert valid[i, s] == bool(pos and neg)
      if pos and neg:
        # Hermans et al.: log(1 + exp(max_p d(a, p) - min_n d(a, n))), d the squared euclidean distance of unit vectors
        unit = lambda x: x * masks[s] / np.linalg.norm(x * masks[s])
        d = lambda j: np.sum((unit(emb[i]) - unit(emb[j])) ** 2)
        ref = np.log1p(np.exp(max(d(j) for j in pos) - min(d(j) for j in neg)))
        np.testing.assert_allclose(loss[i, s], ref, rtol=1e-4, atol=1e-6)
      else:
        assert loss[i, s] == 0


@pytest.mark.parametrize("disentangled", [False, True])
def test_multi_similarity_matches_wang_et_al(disentangled):
  emb, labels = _batch()
  group, masks = _groups(disentangled)
  alpha, beta, base, eps = 2.0, 10.0, 0.5, 0.1
  loss, valid = map(np.asarray, losses.multi_similarity_loss(emb, labels, group, masks, alpha, beta, base, eps))
  for s in range(len(masks)):
    for i in range(10):
      pos, neg = _pairs(labels, group, s, i)
      assert valid[i, s] == bool(pos and neg)
      if not (pos and neg):
        assert loss[i, s] == 0
        continue
      sim = lambda j: np_cos(emb[i] * masks[s], emb[j] * masks[s])
      # Mining (Wang et al. 2019, eq. 5 and 6), then the loss (eq. 8).
      kept_neg = [k for k in neg if sim(k) > min(sim(j) for j in pos) - eps]
      kept_pos = [j for j in pos if sim(j) < max(sim(k) for k in neg) + eps]
      ref = (np.log(1 + sum(np.exp(-alpha * (sim(j) - base)) for j in kept_pos)) / alpha
             + np.log(1 + sum(np.exp(beta * (sim(k) - base)) for k in kept_neg)) / beta)
      np.testing.assert_allclose(loss[i, s], ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("disentangled", [False, True])
def test_supervised_contrastive_matches_khosla_et_al(disentangled):
  emb, labels = _batch()
  group, masks = _groups(disentangled)
  temp = 0.2
  loss, valid = map(np.asarray, losses.supervised_contrastive_loss(emb, labels, group, masks, temp))
  for s in range(len(masks)):
    for i in range(10):
      pos, _ = _pairs(labels, group, s, i)
      assert valid[i, s] == bool(pos)
      sim = lambda j: np_cos(emb[i] * masks[s], emb[j] * masks[s])
      denom = sum(np.exp(sim(a) / temp) for a in range(10) if a != i)
      ref = -np.mean([np.log(np.exp(sim(p) / temp) / denom) for p in pos]) if pos else 0.0
      np.testing.assert_allclose(loss[i, s], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("disentangled", [False, True])
def test_all_triplets_enumerates_every_valid_triplet(disentangled):
  emb, labels = _batch()
  group, masks = _groups(disentangled)
  tag_masks = masks[group]
  total, active, valid = map(np.asarray, losses.all_triplet_loss(emb, labels, tag_masks, 0.1))
  for a in range(10):
    terms = []
    for y in np.flatnonzero(labels[a]):
      for p in range(10):
        for n in range(10):
          if p != a and labels[p, y] and not labels[n, y]:
            m = tag_masks[y]
            terms.append(max(0.0, np_cos(emb[a] * m, emb[n] * m) - np_cos(emb[a] * m, emb[p] * m) + 0.1))
    assert valid[a] == len(terms)
    assert active[a] == sum(t > 0 for t in terms)
    np.testing.assert_allclose(total[a], sum(terms), rtol=1e-4, atol=1e-5)


def test_new_objectives_are_the_same_function_with_a_mask():
  """Entangled and disentangled objectives differ only in their masks: with one subspace
  spanning every dim, the disentangled loss equals the entangled one."""
  from musicrep_jax import configlib, objective  # pylint: disable=import-outside-toplevel
  emb, labels = _batch()
  for name in ("triplet_all", "multi_similarity", "supcon", "triplet_bh"):
    values = []
    for dis in (False, True):
      cfg = configlib.base("smoke").loss
      cfg.name, cfg.disentangled = name, dis
      obj = objective.Objective(cfg, (8,), np.zeros(6, int))
      values.append(float(obj(jax.random.key(0), jnp.asarray(emb)[:, None], None, None, jnp.asarray(labels))[0]))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-6, err_msg=name)
    assert values[0] > 0, name


def test_track_contrastive_is_nt_xent_of_the_excerpt_pairs():
  """SimCLR's NT-Xent (Chen et al. 2020), written from its formula: for excerpt i of 2n, its
  positive is the other excerpt of its track, and -log(exp(s_ip/T) / sum_{a != i} exp(s_ia/T))."""
  emb = np.random.default_rng(3).normal(size=(4, 2, 6)).astype(np.float32)
  temp = 0.1
  flat = emb.reshape(8, 6)
  terms = []
  for i in range(8):
    p = i + 1 if i % 2 == 0 else i - 1
    denom = sum(np.exp(np_cos(flat[i], flat[a]) / temp) for a in range(8) if a != i)
    terms.append(-np.log(np.exp(np_cos(flat[i], flat[p]) / temp) / denom))
  np.testing.assert_allclose(losses.track_contrastive_loss(jnp.asarray(emb), temp), np.mean(terms), rtol=1e-5)
