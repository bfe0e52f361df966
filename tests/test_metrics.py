"""Metrics against scikit-learn and brute-force numpy, with ties and tags without positives."""

import numpy as np
import pytest
from sklearn import metrics as skm

from musicrep_jax import metrics

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("trial", range(5))
def test_roc_auc_and_average_precision_match_sklearn_with_ties(trial):
  y = RNG.random(60) < 0.3
  y[:2] = [True, False]
  s = np.round(RNG.normal(size=60), 1)  # many ties
  assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
  assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))


def test_tagging_metrics_excludes_and_counts_tags_without_positives():
  labels = (RNG.random((40, 5)) < 0.4)
  labels[:, 3] = False  # no positive
  labels[:, 4] = True  # no negative
  scores = RNG.normal(size=(40, 5))
  out = metrics.tagging_metrics(labels, scores, np.array([0, 0, 1, 1, 1]), ("a", "b"))
  assert out["tags_excluded"] == 2
  ref = np.mean([skm.roc_auc_score(labels[:, t], scores[:, t]) for t in range(3)])
  assert out["roc_auc"] == pytest.approx(ref)
  assert out["roc_auc_per_category"]["b"] == pytest.approx(skm.roc_auc_score(labels[:, 2], scores[:, 2]))


def test_known_answers():
  assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
  assert metrics.roc_auc([0, 1], [0.5, 0.5]) == 0.5
  assert metrics.average_precision([1, 0, 1], [0.9, 0.8, 0.1]) == pytest.approx((1 + 2 / 3) / 2)


def brute_recall(emb, labels, k):
  e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  sim = e @ e.T
  np.fill_diagonal(sim, -np.inf)
  out = []
  for q in range(len(e)):
    if labels[q].sum() == 0:
      continue
    nn = np.argsort(-sim[q], kind="stable")[:k]
    union = labels[nn].any(0)
    out.append((union & labels[q]).sum() / labels[q].sum())
  return np.mean(out)


def test_recall_at_k_matches_brute_force_with_chunks_and_ties():
  emb = np.repeat(RNG.normal(size=(25, 4)), 2, axis=0).astype(np.float32)  # duplicates: exact ties
  emb = emb[RNG.permutation(50)]
  labels = RNG.random((50, 6)) < 0.3
  labels[0] = False  # a query without tags is skipped
  out = metrics.recall_at_k(emb, labels, (1, 2, 4, 8), chunk=7)
  for k in (1, 2, 4, 8):
    assert out[str(k)] == pytest.approx(brute_recall(emb, labels, k), abs=1e-6)


def test_recall_known_answer():
  emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
  labels = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], bool)
  # q0 -> 1 (hit), q1 -> 0 (hit), q2 -> 3 (hit), q3 -> 2 (1 of 2 tags)
  assert metrics.recall_at_k(emb, labels, (1,))["1"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_triplet_accuracy_brute_force_and_ties():
  emb = RNG.normal(size=(20, 5))
  trip = RNG.integers(0, 20, size=(100, 3))
  e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  ref = np.mean([(e[a] @ e[p] > e[a] @ e[n]) + 0.5 * (e[a] @ e[p] == e[a] @ e[n]) for a, p, n in trip])
  assert metrics.triplet_accuracy(emb, trip) == pytest.approx(ref)
  assert metrics.triplet_accuracy(emb, np.array([[0, 1, 1]])) == 0.5
  assert metrics.triplet_accuracy(emb, np.zeros((0, 3), int)) is None


def test_sampled_tag_triplets_are_valid():
  labels = RNG.random((30, 6)) < 0.3
  cat = np.array([0, 0, 1, 1, 2, 3])
  trip = metrics.sample_tag_triplets(labels, cat, 0, 50)
  assert trip.shape == (50, 3)
  for a, p, n in trip:
    shared = labels[a, :2] & labels[p, :2]
    assert shared.any() and a != p
    assert any(labels[a, y] and labels[p, y] and not labels[n, y] for y in range(2))


def _brute_order(e, distance):
  """Each row's other rows, nearest first (ties: lower index), from the definitions."""
  if distance == "cosine":
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    score = u @ u.T
  elif distance == "dot":
    score = e @ e.T
  else:
    score = -np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
  np.fill_diagonal(score, -np.inf)
  return np.stack([np.lexsort((np.arange(len(e)), -row))[:-1] for row in score])


@pytest.mark.parametrize("distance", metrics.DISTANCES)
def test_nearest_neighbours_by_each_distance_match_brute_force(distance):
  e = RNG.normal(size=(70, 6)) * RNG.uniform(0.2, 3.0, size=(70, 1))  # norms differ: distances disagree
  got = metrics.nearest_neighbours(e, 5, chunk=16, distance=distance)
  np.testing.assert_array_equal(got, _brute_order(e, distance)[:, :5])


@pytest.mark.parametrize("distance", metrics.DISTANCES)
def test_precision_at_1_r_precision_and_map_at_r_match_brute_force(distance):
  e = RNG.normal(size=(50, 5)) * RNG.uniform(0.5, 2.0, size=(50, 1))
  labels = RNG.random((50, 6)) < 0.15
  order = _brute_order(e, distance)
  p1, rp, mapr = [], [], []
  for q in range(50):
    rel = np.array([(labels[q] & labels[j]).any() for j in order[q]])
    r = rel.sum()
    if r == 0:
      continue
    p1.append(rel[0])
    rp.append(rel[:r].sum() / r)
    mapr.append(sum(rel[i] * rel[: i + 1].sum() / (i + 1) for i in range(r)) / r)
  got = metrics.ranking_metrics(e, labels, chunk=16, distance=distance)
  assert got["precision_at_1"] == pytest.approx(np.mean(p1))
  assert got["r_precision"] == pytest.approx(np.mean(rp))
  assert got["map_at_r"] == pytest.approx(np.mean(mapr))


def test_ranking_metrics_known_answer():
  # Two clusters that share no tag: every track's neighbours in its cluster are relevant.
  e = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1]], float)
  labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], bool)
  got = metrics.ranking_metrics(e, labels)
  assert got == {"precision_at_1": 1.0, "r_precision": 1.0, "map_at_r": 1.0}


def test_embedding_stats():
  e = np.array([[3.0, 0], [0, 1.0], [3.0, 0]])
  s = metrics.embedding_stats(e)
  norms = np.array([3.0, 1.0, 3.0])
  assert s["norm_mean"] == pytest.approx(norms.mean()) and s["norm_cv"] == pytest.approx(norms.std() / norms.mean())
  assert s["mean_pairwise_cosine"] == pytest.approx((0 + 1 + 0) * 2 / 6)


def test_chance_recall_matches_simulated_random_neighbours():
  labels = RNG.random((30, 7)) < 0.25
  labels[0] = False  # a query without tags is left out
  got = metrics.chance_recall_at_k(labels, ks=(1, 3, 8))
  sims = {k: [] for k in (1, 3, 8)}
  rng = np.random.default_rng(1)
  for _ in range(1500):
    for k in sims:
      hits = []
      for q in range(1, 30):
        others = np.delete(np.arange(30), q)
        nn = rng.choice(others, k, replace=False)
        hits.append((labels[nn].any(0) & labels[q]).sum() / max(labels[q].sum(), 1))
      sims[k].append(np.mean([h for h, q in zip(hits, range(1, 30)) if labels[q].any()]))
  for k in sims:
    assert got[str(k)] == pytest.approx(np.mean(sims[k]), abs=0.01), (k, got, np.mean(sims[k]))
