"""Evaluation metrics as pure functions: tagging AUCs, recall@K, triplet accuracy.

Nearest neighbours are computed on the accelerator in chunks of queries, so the
N x N similarity matrix never exists at once (on device or host).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from musicrep_jax import losses


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
  """Area under the ROC curve of one tag (Mann-Whitney U, ties count one half).

  Args: labels: [N] 0/1; scores: [N]. Needs at least one positive and one negative.
  """
  labels = np.asarray(labels, bool)
  n_pos, n_neg = labels.sum(), (~labels).sum()
  ranks = stats.rankdata(scores)  # average ranks for ties
  return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
  """Area under the precision-recall curve as sum_n (R_n - R_{n-1}) P_n over the
  distinct score thresholds (tied scores enter together), as scikit-learn defines it."""
  labels = np.asarray(labels, bool)
  order = np.argsort(-np.asarray(scores), kind="stable")
  s, y = np.asarray(scores)[order], labels[order]
  last_of_group = np.r_[np.diff(s) != 0, True]
  tp = np.cumsum(y)[last_of_group]
  seen = np.arange(1, len(y) + 1)[last_of_group]
  precision, recall = tp / seen, tp / y.sum()
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tagging_metrics(labels: np.ndarray, scores: np.ndarray, tag_category: np.ndarray,
                    categories: Sequence[str]) -> dict:
  """Macro ROC-AUC and PR-AUC over tags, overall and per category. Tags with no
  positive or no negative example have no AUC: they are excluded and counted."""
  labels = np.asarray(labels, bool)
  usable = (labels.sum(0) > 0) & ((~labels).sum(0) > 0)
  roc = np.full(labels.shape[1], np.nan)
  pr = np.full(labels.shape[1], np.nan)
  for t in np.flatnonzero(usable):
    roc[t] = roc_auc(labels[:, t], scores[:, t])
    pr[t] = average_precision(labels[:, t], scores[:, t])

  def mean(x):
    return float(np.nanmean(x)) if np.any(~np.isnan(x)) else None

  return {
      "roc_auc": mean(roc), "pr_auc": mean(pr),
      "roc_auc_per_category": {c: mean(roc[tag_category == i]) for i, c in enumerate(categories)},
      "pr_auc_per_category": {c: mean(pr[tag_category == i]) for i, c in enumerate(categories)},
      "tags_excluded": int((~usable).sum()),
  }


DISTANCES = ("cosine", "euclidean", "dot")


def _prepare(x, distance: str):
  """(rows to multiply, per-row bias) so that x_q . row + bias ranks like the distance:
  cosine: unit rows; dot: the rows; euclidean: -||q - x||^2 / 2 = q.x - ||x||^2 / 2 - ||q||^2 / 2,
  and the last term is the same for every row of one query."""
  x = jnp.asarray(x, jnp.float32)
  if distance == "cosine":
    return losses.l2_normalize(x), jnp.zeros(x.shape[0], jnp.float32)
  if distance == "dot":
    return x, jnp.zeros(x.shape[0], jnp.float32)
  return x, -0.5 * jnp.sum(x * x, axis=-1)


@functools.partial(jax.jit, static_argnames="k")
def _top_k_block(block, bias, queries, exclude, offset, k):
  """Top-k scores of `queries` [Q, D] against the rows of `block` [B, D] (rows offset.. of
  the database); row exclude[q] (-1: none) is left out for query q."""
  sim = queries @ block.T + bias[None]
  sim = jnp.where(exclude[:, None] == offset + jnp.arange(block.shape[0])[None], -jnp.inf, sim)
  return jax.lax.top_k(sim, k)


class TopK:
  """Exact top-k search, the one implementation of the project (evaluation's nearest
  neighbours and `search`'s exact index), by cosine (default), dot product or Euclidean
  distance: the prepared database stays on the accelerator in blocks of `chunk` rows;
  queries go in chunks of `query_chunk`, each one matmul and top-k per block, merged on
  the host. The N x N similarity matrix never exists at once."""

  def __init__(self, vectors, chunk: int = 1 << 18, distance: str = "cosine"):
    if distance not in DISTANCES:
      raise ValueError(f"unknown distance {distance!r}")  # checked in configlib for users
    self.size, self.distance = len(vectors), distance
    self.blocks = [_prepare(vectors[s: s + chunk], distance) for s in range(0, len(vectors), chunk)]
    jax.block_until_ready(self.blocks)

  def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
             query_chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """[Q, D] -> (indices [Q, k], scores [Q, k]), best first, ties: lower index first.
    Scores are cosines, dot products, or q.x - ||x||^2 / 2 for the Euclidean distance.
    `exclude` [Q]: a database row each query must not return (itself, say); -1 for none."""
    queries = np.asarray(queries, np.float32)
    q_total = len(queries)
    exclude = np.full(q_total, -1) if exclude is None else np.asarray(exclude)
    size = min(query_chunk, q_total)
    idx_out, sim_out = [], []
    for start in range(0, q_total, size):
      rows = np.arange(start, min(start + size, q_total))
      padded = np.pad(rows, (0, size - len(rows)), mode="edge")  # one compiled shape
      q = jnp.asarray(queries[padded])
      q = losses.l2_normalize(q) if self.distance == "cosine" else q
      ex = jnp.asarray(exclude[padded], jnp.int32)
      sims, idx, offset = [], [], 0
      for block, bias in self.blocks:
        s, i = _top_k_block(block, bias, q, ex, offset, k=min(k, block.shape[0]))
        sims.append(np.asarray(s))
        idx.append(np.asarray(i) + offset)
        offset += block.shape[0]
      s, i = np.concatenate(sims, 1), np.concatenate(idx, 1)
      order = np.lexsort((i, -s), axis=-1)[:, :k]
      idx_out.append(np.take_along_axis(i, order, 1)[: len(rows)])
      sim_out.append(np.take_along_axis(s, order, 1)[: len(rows)])
    return np.concatenate(idx_out), np.concatenate(sim_out)


def nearest_neighbours(embeddings: np.ndarray, k: int, chunk: int = 256, distance: str = "cosine") -> np.ndarray:
  """[N, k] indices of each row's k nearest other rows (ties: lower index first)."""
  n = len(embeddings)
  return TopK(embeddings, distance=distance).search(embeddings, k, exclude=np.arange(n), query_chunk=chunk)[0]


def recall_at_k(embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8),
                chunk: int = 256, distance: str = "cosine") -> dict[str, float]:
  """Multi-label recall@K (the paper's): |tags(q) & union of tags of its K neighbours| /
  |tags(q)|, averaged over queries with at least one tag."""
  labels = np.asarray(labels, bool)
  nn = nearest_neighbours(embeddings, max(ks), chunk, distance)
  has = labels.sum(1) > 0
  out = {}
  for k in ks:
    union = np.logical_or.reduce(labels[nn[:, :k]], axis=1)
    hit = (union & labels).sum(1) / np.maximum(labels.sum(1), 1)
    out[str(k)] = float(hit[has].mean())
  return out


def chance_recall_at_k(labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8)) -> dict[str, float]:
  """The expected recall@K of random neighbours (K tracks drawn uniformly without
  replacement from the N - 1 others), exactly: a tag y of the query is found with
  probability 1 - C(N-1-n_y, K) / C(N-1, K), n_y being the other tracks with y."""
  from scipy import special  # pylint: disable=import-outside-toplevel
  labels = np.asarray(labels, bool)
  n = len(labels)
  has = labels.sum(1) > 0
  out = {}
  for k in ks:
    others = labels.sum(0)[None] - labels  # [N, T]: other tracks with each tag
    log_miss = special.gammaln(n - others) - special.gammaln(np.maximum(n - others - k, 1)) \
        - special.gammaln(n) + special.gammaln(n - k)  # log C(N-1-n_y, K) - log C(N-1, K)
    miss = np.where(n - 1 - others >= k, np.exp(log_miss), 0.0)
    found = np.where(labels, 1.0 - miss, 0.0).sum(1) / np.maximum(labels.sum(1), 1)
    out[str(k)] = float(found[has].mean())
  return out


def ranking_metrics(embeddings: np.ndarray, labels: np.ndarray, chunk: int = 256,
                    distance: str = "cosine") -> dict[str, float]:
  """Precision@1, R-precision and MAP@R (Musgrave et al. 2020, "A Metric Learning Reality
  Check") for multi-label data: a track is relevant to a query when they share at least
  one tag. With R relevant tracks for a query (itself excluded) and rel(i) = 1 when the
  i-th nearest is relevant: R-precision = sum_{i<=R} rel(i) / R and
  MAP@R = (1/R) sum_{i<=R} rel(i) * (sum_{j<=i} rel(j)) / i. Averaged over queries with R > 0."""
  labels = np.asarray(labels, np.float32)
  n = len(labels)
  out = {"precision_at_1": [], "r_precision": [], "map_at_r": []}
  if n < 2:
    return {k: None for k in out}
  index = TopK(embeddings, distance=distance)
  for start in range(0, n, chunk):
    rows = np.arange(start, min(start + chunk, n))
    order = index.search(np.asarray(embeddings)[rows], n - 1, exclude=rows, query_chunk=chunk)[0]
    rel = (labels[rows] @ labels.T > 0)  # [q, N]
    rel[np.arange(len(rows)), rows] = False
    r = rel.sum(1)
    hits = np.take_along_axis(rel, order, 1)  # [q, N-1] relevance in rank order
    cum = np.cumsum(hits, 1)
    within = np.arange(1, n)[None] <= r[:, None]
    ok = r > 0
    out["precision_at_1"] += list(hits[ok, 0].astype(float))
    out["r_precision"] += list((hits * within).sum(1)[ok] / r[ok])
    out["map_at_r"] += list((hits * within * cum / np.arange(1, n)[None]).sum(1)[ok] / r[ok])
  return {k: float(np.mean(v)) if v else None for k, v in out.items()}


def embedding_stats(embeddings: np.ndarray) -> dict[str, float]:
  """The embedding norm's mean and coefficient of variation, and the mean cosine between
  two different tracks (1: everything points one way, as a collapsed embedding does)."""
  e = np.asarray(embeddings, np.float64)
  norms = np.linalg.norm(e, axis=1)
  u = losses.l2_normalize(e)
  n = len(e)
  total = np.sum(u.sum(0) ** 2)  # sum over all ordered pairs (i, j) of cos(i, j), i = j included
  mean_cos = float((total - np.sum(u * u)) / (n * (n - 1))) if n > 1 else None
  return {"norm_mean": float(norms.mean()), "norm_cv": float(norms.std() / max(norms.mean(), 1e-12)),
          "mean_pairwise_cosine": mean_cos}


def triplet_accuracy(embeddings: np.ndarray, triplets: np.ndarray, mask: np.ndarray | None = None) -> float | None:
  """Fraction of (anchor, positive, negative) index rows with cos(a, p) > cos(a, n)
  (ties count one half), in the masked subspace when given. None without triplets."""
  if len(triplets) == 0:
    return None
  e = np.asarray(embeddings, np.float64)
  if mask is not None:
    e = e * mask
  e = losses.l2_normalize(e)
  a, p, n = (e[triplets[:, i]] for i in range(3))
  ap, an = (a * p).sum(-1), (a * n).sum(-1)
  return float(np.mean((ap > an) + 0.5 * (ap == an)))


def sample_tag_triplets(labels: np.ndarray, tag_category: np.ndarray, category: int, count: int,
                        seed: int = 0) -> np.ndarray:
  """[count, 3] (anchor, positive, negative): anchor and positive share a tag y of the
  category, the negative lacks y. Fewer rows when the split cannot supply them."""
  rng = np.random.default_rng(seed + category)
  labels = np.asarray(labels, bool)
  tags = np.flatnonzero(tag_category == category)
  n = len(labels)
  counts = labels[:, tags].sum(0)
  tags = tags[(counts >= 2) & (counts < n)]
  anchors = np.flatnonzero(labels[:, tags].any(1)) if len(tags) else np.array([], int)
  rows = []
  for _ in range(count if len(anchors) else 0):
    a = rng.choice(anchors)
    y = rng.choice(tags[labels[a, tags]])
    pos = np.flatnonzero(labels[:, y])
    pos = pos[pos != a]
    neg = np.flatnonzero(~labels[:, y])
    rows.append((a, rng.choice(pos), rng.choice(neg)))
  return np.array(rows, int).reshape(-1, 3)
