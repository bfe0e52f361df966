"""A model's training objective: which loss of `losses.py`, in which (sub)space.

config.loss.name:
  "triplet"       label-conditioned triplets (paper rows 1-3),
  "triplet_bh"    batch-hard triplets: over the whole batch (positives share any tag), or
                  per category subspace when disentangled,
  "proxy"         proxy / normalised classification (rows 4, 5, 7, 8),
  "proxy_nca"     Proxy-NCA for multi-label data (temperature config.loss.temperature),
  "vanilla"       vanilla classification (row 6).
config.loss.disentangled puts each tag's loss in its category's subspace;
config.loss.track_weight > 0 adds the track-triplet regulariser (row 3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import losses

NAMES = ("triplet", "triplet_bh", "proxy", "proxy_nca", "vanilla")


def crops_per_track(loss_config) -> int:
  """Excerpts of each track in a batch: two when the track regulariser needs them."""
  return 2 if loss_config.track_weight > 0 else 1


class Objective:
  """Holds the constant masks; `__call__` is pure and jit-friendly."""

  def __init__(self, loss_config, subspace_dims, tag_category):
    if loss_config.name not in NAMES:
      raise ValueError(f"config.loss.name={loss_config.name!r} is unknown: choose one of {', '.join(NAMES)}")
    self.cfg = loss_config
    self.category_masks = losses.subspace_masks(subspace_dims)  # [S, D]
    self.tag_category = np.asarray(tag_category, np.int32)
    if loss_config.disentangled:
      self.tag_masks = self.category_masks[self.tag_category]  # [T, D]
    else:
      self.tag_masks = np.ones((len(tag_category), self.category_masks.shape[1]), np.float32)

  def __call__(self, rng, embeddings, tag_weights, tag_bias, labels):
    """Mean loss of a batch.

    Args: embeddings: [N, K, D] (K excerpts per track); labels: [N, T].
    Returns: (scalar loss, dict of scalar metrics).
    """
    cfg = self.cfg
    first = embeddings[:, 0]
    k_main, k_track = jax.random.split(rng)
    aux = {}
    if cfg.name == "triplet":
      per, valid = losses.label_triplet_loss(k_main, first, labels, jnp.asarray(self.tag_masks), cfg.margin)
      loss = per.sum() / jnp.maximum(valid.sum(), 1)
      aux["valid_triplets"] = valid.mean()
    elif cfg.name == "triplet_bh":
      if cfg.disentangled:
        per, valid = losses.batch_hard_triplet_loss(first, labels, self.tag_category,
                                                    jnp.asarray(self.category_masks), cfg.margin)
      else:  # one group holding every tag, in the complete space
        per, valid = losses.batch_hard_triplet_loss(first, labels, np.zeros_like(self.tag_category),
                                                    jnp.ones((1, self.category_masks.shape[1])), cfg.margin)
      loss = per.sum() / jnp.maximum(valid.sum(), 1)
      aux["valid_triplets"] = valid.mean()
    elif cfg.name == "proxy_nca":
      if cfg.disentangled:
        per, count = losses.proxy_nca_loss(first, tag_weights, labels, self.tag_category, cfg.temperature,
                                           jnp.asarray(self.tag_masks))
      else:
        per, count = losses.proxy_nca_loss(first, tag_weights, labels, None, cfg.temperature)
      loss = per.sum() / jnp.maximum((count > 0).sum(), 1)
      aux["valid_examples"] = (count > 0).mean()
    elif cfg.name == "proxy":
      masks = jnp.asarray(self.tag_masks) if cfg.disentangled else None
      loss = losses.proxy_bce_loss(first, tag_weights, labels, masks).mean()
    else:
      loss = losses.vanilla_bce_loss(first, tag_weights, tag_bias, labels).mean()
    aux["main_loss"] = loss
    if cfg.track_weight > 0:
      track = losses.track_triplet_loss(k_track, first, embeddings[:, 1], cfg.margin).mean()
      aux["track_loss"] = track
      loss = loss + cfg.track_weight * track
    return loss, aux

  def tag_scores(self, embeddings, tag_weights, tag_bias, prototypes=None):
    """Per-tag scores for auto-tagging: the classifier / proxy outputs, or for metric
    learning models the cosine to each tag's prototype (mean training embedding), in the
    tag's subspace when disentangled. [N, D] -> [N, T]."""
    if self.cfg.name.startswith("triplet"):
      return losses.tag_logits(embeddings, losses.l2_normalize(prototypes * self.tag_masks, -1).T,
                               None, jnp.asarray(self.tag_masks), normalize=True)
    masks = jnp.asarray(self.tag_masks) if self.cfg.disentangled else None
    if self.cfg.name == "proxy":
      return losses.tag_logits(embeddings, tag_weights, None, masks, normalize=True)
    if self.cfg.name == "proxy_nca":  # cosine to the normalised proxy, in the tag's subspace
      return losses.tag_logits(embeddings, losses.l2_normalize(tag_weights * jnp.asarray(self.tag_masks).T, axis=0),
                               None, masks, normalize=True)
    return losses.tag_logits(embeddings, tag_weights, tag_bias, None, normalize=False)
