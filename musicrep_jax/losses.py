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


def batch_hard_triplet_loss(embeddings, labels, tag_category, category_masks, margin: float = 0.1):
  """Batch-hard triplet loss per category: for each anchor and category s, the hardest
  positive (shares a tag of s, lowest cosine) against the hardest negative (shares no
  tag of s, highest cosine), both in the subspace m_s.

  Args: embeddings: [N, D]; labels: [N, T]; tag_category: [T] ints in [0, S);
    category_masks: [S, D] (rows of ones for the complete space).
  Returns: ([N, S] loss, [N, S] valid).
  """
  labels = labels.astype(jnp.float32)
  n = labels.shape[0]
  num_categories = category_masks.shape[0]
  in_cat = jax.nn.one_hot(tag_category, num_categories)  # [T, S]
  losses, valids = [], []
  for s in range(num_categories):
    z = l2_normalize(embeddings * category_masks[s])
    sim = z @ z.T
    ls = labels * in_cat[:, s]
    share = (ls @ ls.T) > 0
    has_tag = ls.sum(-1) > 0
    pos = share & ~jnp.eye(n, dtype=bool)
    neg = ~share & has_tag[None]
    hardest_pos = jnp.min(jnp.where(pos, sim, jnp.inf), axis=1)
    hardest_neg = jnp.max(jnp.where(neg, sim, -jnp.inf), axis=1)
    valid = pos.any(1) & neg.any(1)
    losses.append(jnp.where(valid, jax.nn.relu(jnp.where(valid, hardest_neg - hardest_pos, 0.0) + margin), 0.0))
    valids.append(valid)
  return jnp.stack(losses, 1), jnp.stack(valids, 1)


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


def multilabel_bce(logits, labels):
  """sum over tags of sigmoid binary cross-entropy; [N, T] -> [N]."""
  return optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)).sum(-1)


def proxy_bce_loss(embeddings, proxies, labels, tag_masks=None):
  """Proxy loss = normalised classification: sum_y BCE(sigmoid(f(x)/||f(x)|| . p_y), y(x)).

  With tag_masks [T, D] each tag's score lives in its category's subspace.
  Args: embeddings: [N, D]; proxies: [D, T]; labels: [N, T]. Returns: [N].
  """
  return multilabel_bce(tag_logits(embeddings, proxies, None, tag_masks, normalize=True), labels)


def vanilla_bce_loss(embeddings, weights, bias, labels):
  """Vanilla classification: sum_y BCE(sigmoid(f(x) . w_y + b_y), y(x)); [N] per example."""
  return multilabel_bce(tag_logits(embeddings, weights, bias, None, normalize=False), labels)


def proxy_nca_loss(embeddings, proxies, labels, tag_category=None, temperature: float = 0.11, tag_masks=None):
  """Proxy-NCA for multi-label data, averaged over each example's positive tags y:

    -log( exp(-d(x, p_y) / T) / sum_{z not a tag of x} exp(-d(x, p_z) / T) ),
    d(x, p) = || x/||x|| - p/||p|| ||^2.

  Disentangled (tag_masks [T, D] and tag_category [T] given): x and p_y are taken in the
  subspace of y's category and the negatives z are restricted to that category's tags.
  A positive without any negative is excluded (no NaN) and reported as not valid.
  Args: embeddings: [N, D]; proxies: [D, T]; labels: [N, T].
  Returns: ([N] loss, [N] number of valid positives).
  """
  t = proxies.shape[1]
  if tag_masks is None:
    tag_masks = jnp.ones((t, proxies.shape[0]), jnp.asarray(embeddings).dtype)
  cos = tag_logits(embeddings, l2_normalize(proxies * tag_masks.T, axis=0), None, tag_masks, normalize=True)
  logits = -(2.0 - 2.0 * cos) / temperature  # [N, T]
  labels = labels.astype(bool)
  same_group = (jnp.ones((t, t), bool) if tag_category is None
                else jnp.asarray(tag_category)[:, None] == jnp.asarray(tag_category)[None, :])  # [T(y), T(z)]
  negatives = (~labels)[:, None, :] & same_group[None]  # [N, y, z]
  # A large finite filler, not -inf: logsumexp of all -inf has a NaN gradient.
  lse = jax.nn.logsumexp(jnp.where(negatives, logits[:, None, :], -1e9), axis=-1)  # [N, y]
  valid = labels & negatives.any(-1)
  per_positive = jnp.where(valid, jnp.where(valid, lse, 0.0) - logits, 0.0)
  count = valid.sum(-1)
  return per_positive.sum(-1) / jnp.maximum(count, 1), count
