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


@functools.partial(jax.jit, static_argnames="k")
def _top_k_block(block, queries, exclude, offset, k):
  """Top-k cosines of unit `queries` [Q, D] against the unit rows of `block` [B, D]
  (rows offset.. of the database); row exclude[q] (-1: none) is left out for query q."""
  sim = losses.l2_normalize(queries) @ block.T
  sim = jnp.where(exclude[:, None] == offset + jnp.arange(block.shape[0])[None], -jnp.inf, sim)
  return jax.lax.top_k(sim, k)


class CosineTopK:
  """Exact top-k cosine search, the one implementation of the project (evaluation's
  nearest neighbours and `search`'s exact index): the unit-normalised database stays on
  the accelerator in blocks of `chunk` rows; queries go in chunks of `query_chunk`, each
  one matmul and top-k per block, merged on the host. The N x N similarity matrix never
  exists at once."""

  def __init__(self, vectors, chunk: int = 1 << 18):
    self.size = len(vectors)
    self.blocks = [losses.l2_normalize(jnp.asarray(vectors[s: s + chunk], jnp.float32))
                   for s in range(0, len(vectors), chunk)]
    jax.block_until_ready(self.blocks)

  def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
             query_chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """[Q, D] -> (indices [Q, k], cosines [Q, k]), best first, ties: lower index first.
    `exclude` [Q]: a database row each query must not return (itself, say); -1 for none."""
    queries = np.asarray(queries, np.float32)
    q_total = len(queries)
    exclude = np.full(q_total, -1) if exclude is None else np.asarray(exclude)
    size = min(query_chunk, q_total)
    idx_out, sim_out = [], []
    for start in range(0, q_total, size):
      rows = np.arange(start, min(start + size, q_total))
      padded = np.pad(rows, (0, size - len(rows)), mode="edge")  # one compiled shape
      q, ex = jnp.asarray(queries[padded]), jnp.asarray(exclude[padded], jnp.int32)
      sims, idx, offset = [], [], 0
      for block in self.blocks:
        s, i = _top_k_block(block, q, ex, offset, k=min(k, block.shape[0]))
        sims.append(np.asarray(s))
        idx.append(np.asarray(i) + offset)
        offset += block.shape[0]
      s, i = np.concatenate(sims, 1), np.concatenate(idx, 1)
      order = np.lexsort((i, -s), axis=-1)[:, :k]
      idx_out.append(np.take_along_axis(i, order, 1)[: len(rows)])
      sim_out.append(np.take_along_axis(s, order, 1)[: len(rows)])
    return np.concatenate(idx_out), np.concatenate(sim_out)


def nearest_neighbours(embeddings: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
  """[N, k] indices of each row's k most cosine-similar other rows (ties: lower index first)."""
  n = len(embeddings)
  return CosineTopK(embeddings).search(embeddings, k, exclude=np.arange(n), query_chunk=chunk)[0]


def recall_at_k(embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8),
                chunk: int = 256) -> dict[str, float]:
  """Multi-label recall@K: |tags(q) & union of tags of its K neighbours| / |tags(q)|,
  averaged over queries with at least one tag."""
  labels = np.asarray(labels, bool)
  nn = nearest_neighbours(embeddings, max(ks), chunk)
  has = labels.sum(1) > 0
  out = {}
  for k in ks:
    union = np.logical_or.reduce(labels[nn[:, :k]], axis=1)
    hit = (union & labels).sum(1) / np.maximum(labels.sum(1), 1)
    out[str(k)] = float(hit[has].mean())
  return out


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
