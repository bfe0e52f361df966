"""The real-audio benchmark's figures (tools/real_audio.py) against numpy written from
their definitions: leave-one-out precision@5 and 1-NN accuracy by cosine, and chance."""

import numpy as np
import pytest

from musicrep_jax.tools import real_audio


def _brute_force(x, groups, k):
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = x @ x.T
  np.fill_diagonal(sim, -np.inf)  # leave the query out
  p, nn = [], []
  for i in range(len(x)):
    order = sorted(range(len(x)), key=lambda j: (-sim[i, j], j))[:k]
    p.append(np.mean(groups[order] == groups[i]))
    nn.append(float(groups[order[0]] == groups[i]))
  return np.array(p), np.array(nn)


def test_same_group_retrieval_is_leave_one_out_precision_and_nearest_neighbour():
  rng = np.random.default_rng(3)
  groups = np.repeat(np.arange(4), [3, 5, 7, 9])
  x = rng.normal(size=(len(groups), 6)) + 0.8 * rng.normal(size=(4, 6))[groups]  # some group structure
  got = real_audio.same_group_retrieval(x, groups, k=5)
  p, nn = _brute_force(x, groups, 5)
  assert got["precision_at_5"] == pytest.approx(p.mean()) and got["nn_accuracy"] == pytest.approx(nn.mean())
  assert got["precision_at_5_se"] == pytest.approx(p.std(ddof=1) / np.sqrt(len(p)))
  assert got["nn_accuracy_se"] == pytest.approx(nn.std(ddof=1) / np.sqrt(len(nn)))


def test_chance_is_the_expected_share_of_random_neighbours():
  groups = np.repeat(np.arange(3), [2, 4, 8])
  rng = np.random.default_rng(0)
  n, draws = len(groups), 20_000
  p5, nn = np.zeros(n), np.zeros(n)
  for i in range(n):  # random neighbours: 5 others drawn without replacement
    others = np.delete(np.arange(n), i)
    picks = np.array([rng.choice(others, 5, replace=False) for _ in range(draws)])
    p5[i] = np.mean(groups[picks] == groups[i])
    nn[i] = np.mean(groups[picks[:, 0]] == groups[i])
  got = real_audio.chance(groups, k=5)
  assert got["precision_at_5"] == pytest.approx(p5.mean(), abs=0.005)
  assert got["nn_accuracy"] == pytest.approx(nn.mean(), abs=0.01)


def test_standardised_columns_and_a_collection_needs_two_groups(tmp_path):
  x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
  z = real_audio.standardised(x)
  assert np.allclose(z[:, 0], [-1.2247449, 0.0, 1.2247449]) and np.all(z[:, 1] == 0)
  (tmp_path / "one").mkdir()
  for name in ("a.wav", "b.ogg", "notes.txt"):
    (tmp_path / "one" / name).write_bytes(b"")
  with pytest.raises(real_audio.BenchmarkError, match="1 sub-folder"):
    real_audio.collection(str(tmp_path))
  (tmp_path / "two" / "deeper").mkdir(parents=True)
  for name in ("c.flac", "deeper/d.mp3"):
    (tmp_path / "two" / name).write_bytes(b"")
  paths, groups, names, skipped = real_audio.collection(str(tmp_path))
  assert names == ["one", "two"] and list(groups) == [0, 0, 1, 1]
  assert list(skipped) == [str(tmp_path / "one" / "notes.txt")]  # left out, and named
  assert [p.rsplit("/", 1)[1] for p in paths] == ["a.wav", "b.ogg", "c.flac", "d.mp3"]
  with pytest.raises(real_audio.BenchmarkError, match="not a folder"):
    real_audio.collection(str(tmp_path / "missing"))


def test_paired_difference_is_per_query():
  a = {"precision_at_5_per_query": [0.4, 0.6, 1.0, 0.2]}
  b = {"precision_at_5_per_query": [0.2, 0.6, 0.6, 0.4]}
  d = np.array([0.2, 0.0, 0.4, -0.2])
  got = real_audio.paired_difference(a, b)
  assert got["difference"] == pytest.approx(d.mean()) and got["difference_se"] == pytest.approx(d.std(ddof=1) / 2)
