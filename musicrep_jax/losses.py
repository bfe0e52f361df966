"""The paper's losses, one pure function per formula, per-example values (reduce outside).

Shapes: N examples, D embedding dims, T tags, S categories. A "mask" is a 0/1 vector
over the D dims selecting a category subspace; the disentangled variant of every
loss is the same function given the mask of the relevant category (no mask: the
complete space).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

EPS = 1e-8


def subspace_masks(subspace_dims: Sequence[int]) -> np.ndarray:
  """[S, D] disjoint 0/1 masks, one block of dims per category."""
  bounds = np.cumsum([0, *subspace_dims])
  masks = np.zeros((len(subspace_dims), bounds[-1]), np.float32)
  for s in range(len(subspace_dims)):
    masks[s, bounds[s]: bounds[s + 1]] = 1.0
  return masks


def l2_normalize(x, axis: int = -1):
  """x / sqrt(||x||^2 + EPS): unit vectors, zero stays zero, a gradient that stays finite
  at x = 0. The one L2 normalisation of the project: a numpy array is normalised on the
  host in its own precision (metrics in float64, faiss inputs), anything else with JAX."""
  if isinstance(x, np.ndarray):
    return x / np.sqrt(np.sum(x * x, axis=axis, keepdims=True) + EPS)
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + EPS)


def cosine(a: jax.Array, b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """cos(a * m, b * m) over the last axis; [..., D] -> [...]."""
  if mask is not None:
    a, b = a * mask, b * mask
  return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def triplet_loss(anchor, positive, negative, margin: float = 0.1, mask=None) -> jax.Array:
  """max(0, cos(a, n) - cos(a, p) + margin), on the masked subspace when given.

  Args: anchor, positive, negative: [N, D]; mask: [D] or [N, D] or None.
  Returns: [N] per-triplet loss.
  """
  return jax.nn.relu(cosine(anchor, negative, mask) - cosine(anchor, positive, mask) + margin)


def sample_label_triplets(rng: jax.Array, labels: jax.Array):
  """Label-conditioned triplets inside a batch (each excerpt embedded once).

  For each anchor i: a tag y drawn uniformly from i's tags that some other example
  has and some example lacks; a positive drawn uniformly from the other examples with
  y; a negative drawn uniformly from the examples without y.

  Args: labels: [N, T] multi-hot.
  Returns: (positive index [N], negative index [N], tag [N], valid [N] bool).
  """
  labels = labels.astype(bool)
  n = labels.shape[0]
  count = labels.sum(0)  # [T] examples having each tag
  usable = labels & (count > 1)[None] & (count < n)[None]  # [N, T]
  k1, k2, k3 = jax.random.split(rng, 3)

  def draw(key, allowed):  # uniform index among the True entries of each row
    g = jax.random.gumbel(key, allowed.shape)
    return jnp.argmax(jnp.where(allowed, g, -jnp.inf), axis=-1)

  tag = draw(k1, usable)
  has = labels[:, tag].T  # [N anchors, N candidates]: candidate has the anchor's tag
  pos = draw(k2, has & ~jnp.eye(n, dtype=bool))
  neg = draw(k3, ~has)
  return pos, neg, tag, usable.any(-1)


def sample_category_triplets(rng: jax.Array, labels: jax.Array, tag_category: jax.Array, num_categories: int):
  """The paper's triplet sampling, inside a batch: for each anchor i a category drawn
  uniformly from those where i has a usable tag (one that some other example has and
  some example lacks), then a tag of i in it, then a positive with the tag (not i) and a
  negative without it.

  Args: labels: [N, T] multi-hot; tag_category: [T] ints in [0, num_categories).
  Returns: (positive index [N], negative index [N], tag [N], valid [N] bool).
  """
  labels = labels.astype(bool)
  n = labels.shape[0]
  count = labels.sum(0)
  usable = labels & (count > 1)[None] & (count < n)[None]  # [N, T]
  in_cat = jax.nn.one_hot(tag_category, num_categories, dtype=bool)  # [T, S]
  cat_ok = (usable[:, :, None] & in_cat[None]).any(1)  # [N, S]
  k0, k1, k2, k3 = jax.random.split(rng, 4)

  def draw(key, allowed):
    g = jax.random.gumbel(key, allowed.shape)
    return jnp.argmax(jnp.where(allowed, g, -jnp.inf), axis=-1)

  cat = draw(k0, cat_ok)
  tag = draw(k1, usable & (tag_category[None] == cat[:, None]))
  has = labels[:, tag].T
  pos = draw(k2, has & ~jnp.eye(n, dtype=bool))
  neg = draw(k3, ~has)
  return pos, neg, tag, cat_ok.any(-1)


def label_triplet_loss(rng, embeddings, labels, tag_masks, margin: float = 0.1):
  """Triplet loss on in-batch label-conditioned triplets; the disentangled variant uses
  the subspace of each triplet's tag.

  Args: embeddings: [N, D]; labels: [N, T]; tag_masks: [T, D] (all ones: complete space).
  Returns: ([N] loss, [N] valid).
  """
  pos, neg, tag, valid = sample_label_triplets(rng, labels)
  loss = triplet_loss(embeddings, embeddings[pos], embeddings[neg], margin, tag_masks[tag])
  return jnp.where(valid, loss, 0.0), valid


def group_pairs(embeddings, labels, tag_group, group_masks):
  """The pairs of a batch per tag group (a category when disentangled; one group of all
  tags otherwise), for the pair-based losses below.

  For group s: sim [N, N] cosines in the group's subspace m_s; pos [N, N]: j != i shares a
  tag of s with i; neg [N, N]: j shares no tag of s with i, and i and j both have one.
  Args: embeddings: [N, D]; labels: [N, T]; tag_group: [T] ints in [0, S); group_masks: [S, D].
  Returns: sim, pos, neg, each [S, N, N].
  """
  labels = labels.astype(jnp.float32)
  n = labels.shape[0]
  in_group = jax.nn.one_hot(tag_group, group_masks.shape[0]).T  # [S, T]
  z = l2_normalize(embeddings[None] * jnp.asarray(group_masks)[:, None])  # [S, N, D]
  sim = jnp.einsum("snd,smd->snm", z, z)
  ls = labels[None] * in_group[:, None]  # [S, N, T]
  share = jnp.einsum("snt,smt->snm", ls, ls) > 0
  has_tag = ls.sum(-1) > 0  # [S, N]
  pos = share & ~jnp.eye(n, dtype=bool)
  neg = ~share & has_tag[:, None, :] & has_tag[:, :, None]
  return sim, pos, neg


def batch_hard_triplet_loss(embeddings, labels, tag_group, group_masks, margin: float = 0.1,
                            soft_temperature: float | None = None):
  """Batch-hard triplets per group s (Hermans et al. 2017): for each anchor, the hardest
  positive (lowest cosine) against the hardest negative (highest cosine) of `group_pairs`:

    hinge: max(0, s_n - s_p + margin);  soft margin: log(1 + exp((s_n - s_p) / soft_temperature)).

  With unit vectors ||a - b||^2 = 2 - 2 cos, so soft_temperature = 0.5 is Hermans et al.'s
  soft margin on squared euclidean distances.
  Args: embeddings: [N, D]; labels: [N, T]; tag_group: [T] ints in [0, S); group_masks: [S, D].
  Returns: ([N, S] loss, [N, S] valid).
  """
  sim, pos, neg = group_pairs(embeddings, labels, tag_group, group_masks)
  hardest_pos = jnp.min(jnp.where(pos, sim, jnp.inf), axis=-1)
  hardest_neg = jnp.max(jnp.where(neg, sim, -jnp.inf), axis=-1)
  valid = pos.any(-1) & neg.any(-1)  # [S, N]
  gap = jnp.where(valid, hardest_neg - hardest_pos, 0.0)
  loss = jax.nn.relu(gap + margin) if soft_temperature is None else jax.nn.softplus(gap / soft_temperature)
  return jnp.where(valid, loss, 0.0).T, valid.T


def _log1p_sum_exp(x, mask):
  """log(1 + sum_j mask_j exp(x_j)) over the last axis, stable (0 where nothing is masked in)."""
  x = jnp.where(mask, x, -jnp.inf)
  top = jax.lax.stop_gradient(jnp.maximum(jnp.max(x, axis=-1, keepdims=True), 0.0))
  return (top + jnp.log(jnp.exp(-top) + jnp.sum(jnp.exp(x - top), axis=-1, keepdims=True)))[..., 0]


def multi_similarity_loss(embeddings, labels, tag_group, group_masks, alpha: float = 2.0, beta: float = 50.0,
                          base: float = 0.5, epsilon: float = 0.1):
  """Multi-similarity loss with its pair miner (Wang et al. 2019), per group s of
  `group_pairs`. Mining: a negative k is kept when s_ik + epsilon > min_{j pos} s_ij, a
  positive j when s_ij - epsilon < max_{k neg} s_ik. Then

    1/alpha log(1 + sum_{kept pos} exp(-alpha (s_ij - base))) + 1/beta log(1 + sum_{kept neg} exp(beta (s_ik - base))).

  Args: embeddings: [N, D]; labels: [N, T]; tag_group: [T]; group_masks: [S, D].
  Returns: ([N, S] loss, [N, S] valid: the anchor has a positive and a negative).
  """
  sim, pos, neg = group_pairs(embeddings, labels, tag_group, group_masks)
  min_pos = jnp.min(jnp.where(pos, sim, jnp.inf), axis=-1, keepdims=True)
  max_neg = jnp.max(jnp.where(neg, sim, -jnp.inf), axis=-1, keepdims=True)
  pos_kept = pos & (sim - epsilon < max_neg)
  neg_kept = neg & (sim + epsilon > min_pos)
  loss = (_log1p_sum_exp(-alpha * (sim - base), pos_kept) / alpha
          + _log1p_sum_exp(beta * (sim - base), neg_kept) / beta)
  valid = pos.any(-1) & neg.any(-1)
  return jnp.where(valid, loss, 0.0).T, valid.T


def supervised_contrastive_loss(embeddings, labels, tag_group, group_masks, temperature: float = 0.1):
  """Multi-label supervised contrastive loss (Khosla et al. 2020, L_out), per group s of
  `group_pairs`: positives P(i) share a tag of s with i, the denominator runs over every
  other example a != i of the batch:

    -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) ).

  Args: embeddings: [N, D]; labels: [N, T]; tag_group: [T]; group_masks: [S, D].
  Returns: ([N, S] loss, [N, S] valid: the anchor has a positive).
  """
  sim, pos, _ = group_pairs(embeddings, labels, tag_group, group_masks)
  n = sim.shape[-1]
  logits = sim / temperature
  log_prob = logits - jax.nn.logsumexp(jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logits), axis=-1, keepdims=True)
  count = pos.sum(-1)
  loss = -jnp.sum(jnp.where(pos, log_prob, 0.0), axis=-1) / jnp.maximum(count, 1)
  return jnp.where(count > 0, loss, 0.0).T, (count > 0).T


def track_contrastive_loss(embeddings, temperature: float = 0.1):
  """NT-Xent (Chen et al. 2020, SimCLR) of two excerpts of each of n tracks [n, 2, D]:
  each excerpt's one positive is the other excerpt of its track, and the other 2n - 2
  excerpts are its negatives. It is the supervised contrastive loss above with the track
  as the only label, over the whole space. Returns the mean over the 2n excerpts."""
  n, _, d = embeddings.shape
  labels = jnp.repeat(jnp.eye(n), 2, axis=0)  # [2n, n]: excerpt -> its track
  loss, _ = supervised_contrastive_loss(embeddings.reshape(2 * n, d), labels, jnp.zeros(n, jnp.int32),
                                        jnp.ones((1, d)), temperature)
  return loss.mean()


def all_triplet_loss(embeddings, labels, tag_masks, margin: float = 0.1):
  """The label-conditioned triplet loss over every valid triplet of the batch: for each
  anchor a, tag y of a, positive p != a with y and negative n without y,
  max(0, cos_y(a, n) - cos_y(a, p) + margin), cosines in y's subspace (tag_masks[y]).

  Args: embeddings: [N, D]; labels: [N, T]; tag_masks: [T, D] (all ones: complete space).
  Returns: ([N] sum of the anchor's triplet losses, [N] its triplets with a positive loss,
    [N] its valid triplets). Reduced as the sum over the number of positive losses (the
    average over non-zero triplets of pytorch-metric-learning's TripletMarginLoss).
  """
  has = labels.astype(bool).T  # [T, N]
  n = has.shape[1]
  z = l2_normalize(embeddings[None] * jnp.asarray(tag_masks)[:, None])  # [T, N, D]
  sim = jnp.einsum("tnd,tmd->tnm", z, z)  # [T, a, j]
  pos = has[:, :, None] & has[:, None, :] & ~jnp.eye(n, dtype=bool)  # [T, a, p]
  neg = has[:, :, None] & ~has[:, None, :]  # [T, a, n]
  valid = pos[..., None] & neg[:, :, None, :]  # [T, a, p, n]
  loss = jnp.where(valid, jax.nn.relu(sim[:, :, None, :] - sim[:, :, :, None] + margin), 0.0)
  return loss.sum((0, 2, 3)), (loss > 0).sum((0, 2, 3)), valid.sum((0, 2, 3))


def track_triplet_loss(rng, first, second, margin: float = 0.1):
  """Triplet loss with two excerpts of one track as anchor and positive and an excerpt
  of another track of the batch as negative, in the complete space.

  Args: first, second: [N, D], row i two non-overlapping excerpts of track i.
  Returns: [N] loss.
  """
  n = first.shape[0]
  shift = jax.random.randint(rng, (), 1, max(n, 2))
  return triplet_loss(first, second, jnp.roll(second, shift, axis=0), margin)


def tag_logits(embeddings, weights, bias=None, tag_masks=None, normalize: bool = True):
  """Per-tag scores.

  normalize: (f(x) m_y / ||f(x) m_y||) . (w_y m_y)  (proxy / normalised classifier);
  otherwise f(x) . w_y + b_y (vanilla classifier).
  Args: embeddings: [N, D]; weights: [D, T]; bias: [T] or None; tag_masks: [T, D] or None.
  Returns: [N, T].
  """
  if tag_masks is None:
    tag_masks = jnp.ones((weights.shape[1], weights.shape[0]), jnp.asarray(embeddings).dtype)
  logits = embeddings @ (weights * tag_masks.T)
  if normalize:
    logits = logits * jax.lax.rsqrt((embeddings**2) @ tag_masks.T + EPS)
  if bias is not None:
    logits = logits + bias
  return logits


def multilabel_bce(logits, labels, seen=None):
  """sum over tags (the `seen` [T] 0/1 tags only, when given) of sigmoid binary
  cross-entropy; [N, T] -> [N]."""
  bce = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))
  return (bce if seen is None else bce * seen).sum(-1)


def proxy_bce_loss(embeddings, proxies, labels, tag_masks=None, seen=None):
  """Proxy loss = normalised classification: sum_y BCE(sigmoid(f(x)/||f(x)|| . p_y), y(x)).

  With tag_masks [T, D] each tag's score lives in its category's subspace; `seen` [T]
  leaves held-out tags out of the sum.
  Args: embeddings: [N, D]; proxies: [D, T]; labels: [N, T]. Returns: [N].
  """
  return multilabel_bce(tag_logits(embeddings, proxies, None, tag_masks, normalize=True), labels, seen)


def vanilla_bce_loss(embeddings, weights, bias, labels, seen=None):
  """Vanilla classification: sum_y BCE(sigmoid(f(x) . w_y + b_y), y(x)); [N] per example."""
  return multilabel_bce(tag_logits(embeddings, weights, bias, None, normalize=False), labels, seen)


def proxy_nca_loss(embeddings, proxies, labels, tag_category=None, temperature: float = 0.11, tag_masks=None,
                   seen=None):
  """Proxy-NCA for multi-label data, averaged over each example's positive tags y:

    -log( exp(-d(x, p_y) / T) / sum_{z not a tag of x} exp(-d(x, p_z) / T) ),
    d(x, p) = || x/||x|| - p/||p|| ||^2.

  Disentangled (tag_masks [T, D] and tag_category [T] given): x and p_y are taken in the
  subspace of y's category and the negatives z are restricted to that category's tags.
  A positive without any negative is excluded (no NaN) and reported as not valid; tags
  outside `seen` [T] (held out) are neither positives nor negatives.
  Args: embeddings: [N, D]; proxies: [D, T]; labels: [N, T].
  Returns: ([N] loss, [N] number of valid positives).
  """
  t = proxies.shape[1]
  if tag_masks is None:
    tag_masks = jnp.ones((t, proxies.shape[0]), jnp.asarray(embeddings).dtype)
  cos = tag_logits(embeddings, l2_normalize(proxies * tag_masks.T, axis=0), None, tag_masks, normalize=True)
  logits = -(2.0 - 2.0 * cos) / temperature  # [N, T]
  labels = labels.astype(bool)
  if seen is not None:
    labels = labels & jnp.asarray(seen, bool)[None]
  same_group = (jnp.ones((t, t), bool) if tag_category is None
                else jnp.asarray(tag_category)[:, None] == jnp.asarray(tag_category)[None, :])  # [T(y), T(z)]
  negatives = (~labels)[:, None, :] & same_group[None]  # [N, y, z]
  if seen is not None:
    negatives = negatives & jnp.asarray(seen, bool)[None, None]
  # A large finite filler, not -inf: logsumexp of all -inf has a NaN gradient.
  lse = jax.nn.logsumexp(jnp.where(negatives, logits[:, None, :], -1e9), axis=-1)  # [N, y]
  valid = labels & negatives.any(-1)
  per_positive = jnp.where(valid, jnp.where(valid, lse, 0.0) - logits, 0.0)
  count = valid.sum(-1)
  return per_positive.sum(-1) / jnp.maximum(count, 1), count
