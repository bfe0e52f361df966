"""A model's training objective: which loss of `losses.py`, in which (sub)space.

Every loss is described once, in `LOSSES` (name -> `LossSpec`): how a batch is scored,
how a trained model tags (its outputs, or the cosine to each tag's prototype), and
whether its tag scores are logits. `objective`, `evaluate`, `search` and the tools read
the table; none of them tests a loss's name. Adding a loss is a pure function in
`losses.py`, one entry here and one file in configs/ (see CONTRIBUTING.md).

config.loss.disentangled puts each tag's loss in its category's subspace: the same
function of `losses.py` given that subspace's mask (all ones: the complete space);
config.loss.track_weight > 0 adds the track-triplet regulariser (paper row 3).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import losses


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """One loss.

  batch_loss(objective, rng, embeddings [N, D], tag_weights [D, T], tag_bias [T], labels [N, T])
    -> (scalar loss, dict of scalar metrics).
  tag_scores(objective, embeddings [N, D], tag_weights, tag_bias, prototypes [T, D] or None) -> [N, T].
  needs_prototypes: tagging compares with each tag's mean training embedding (metric learning
    without a per-tag output); evaluation computes them and `search` needs prototypes.npy.
  logits: the tag scores are logits (a sigmoid gives probabilities); otherwise cosines.
  gather: None (each excerpt of the batch is embedded once: in-batch sampling), or
    gather(objective, rng, labels [N, T], crops) -> (index [N, M] into the batch's N * crops
    excerpts, sample dict): the excerpts to embed for each example, each as its own input
    (the paper's sampler: anchor, positive, negative); batch_loss then receives the
    [N, M, D] embeddings and the sample as a last argument.
  inputs_per_example: excerpts embedded for one training example (without the track regulariser).
  """
  batch_loss: Callable
  tag_scores: Callable
  needs_prototypes: bool
  logits: bool
  gather: Callable | None = None
  inputs_per_example: int = 1
  doc: str = ""


def _mean_valid(per, valid):
  return per.sum() / jnp.maximum(valid.sum(), 1)


def _label_triplet(o, rng, emb, w, b, labels):
  per, valid = losses.label_triplet_loss(rng, emb, labels, jnp.asarray(o.tag_masks), o.cfg.margin)
  return _mean_valid(per, valid), {"valid_triplets": valid.mean()}


def _paper_gather(o, rng, labels, crops):
  """The paper's sampler: per example a category, a tag, and a positive and a negative for
  it (losses.sample_category_triplets), each embedded as its own input; with the track
  regulariser also the anchor's second excerpt and another track's second excerpt."""
  k_sample, k_other = jax.random.split(rng)
  pos, neg, tag, valid = losses.sample_category_triplets(k_sample, labels, jnp.asarray(o.tag_category),
                                                         len(o.category_masks))
  n = labels.shape[0]
  i = jnp.arange(n)
  cols = [i * crops, pos * crops, neg * crops]
  if crops > 1:
    other = (i + jax.random.randint(k_other, (), 1, max(n, 2))) % n
    cols += [i * crops + 1, other * crops + 1]
  return jnp.stack(cols, 1), {"tag": tag, "valid": valid}


def _paper_triplet(o, rng, emb, w, b, labels, sample):
  masks = jnp.asarray(o.tag_masks)[sample["tag"]]
  per = losses.triplet_loss(emb[:, 0], emb[:, 1], emb[:, 2], o.cfg.margin, masks)
  valid = sample["valid"]
  return _mean_valid(jnp.where(valid, per, 0.0), valid), {"valid_triplets": valid.mean()}


def _batch_hard_triplet(o, rng, emb, w, b, labels):
  soft = o.cfg.temperature if o.cfg.soft_margin else None
  per, valid = losses.batch_hard_triplet_loss(emb, labels, o.tag_group, o.group_masks, o.cfg.margin, soft)
  return _mean_valid(per, valid), {"valid_triplets": valid.mean()}


def _all_triplets(o, rng, emb, w, b, labels):
  total, active, valid = losses.all_triplet_loss(emb, labels, jnp.asarray(o.tag_masks), o.cfg.margin)
  return total.sum() / jnp.maximum(active.sum(), 1), {"active_triplets": active.sum() / jnp.maximum(valid.sum(), 1)}


def _multi_similarity(o, rng, emb, w, b, labels):
  c = o.cfg
  per, valid = losses.multi_similarity_loss(emb, labels, o.tag_group, o.group_masks, c.ms_alpha, c.ms_beta,
                                            c.ms_base, c.ms_epsilon)
  return _mean_valid(per, valid), {"valid_anchors": valid.mean()}


def _supervised_contrastive(o, rng, emb, w, b, labels):
  per, valid = losses.supervised_contrastive_loss(emb, labels, o.tag_group, o.group_masks, o.cfg.temperature)
  return _mean_valid(per, valid), {"valid_anchors": valid.mean()}


def _proxy_bce(o, rng, emb, w, b, labels):
  return losses.proxy_bce_loss(emb, w, labels, o.tag_masks, o.seen).mean(), {}


def _proxy_nca(o, rng, emb, w, b, labels):
  per, count = losses.proxy_nca_loss(emb, w, labels, o.tag_group, o.cfg.temperature, o.tag_masks, o.seen)
  return _mean_valid(per, count > 0), {"valid_examples": (count > 0).mean()}


def _vanilla_bce(o, rng, emb, w, b, labels):
  return losses.vanilla_bce_loss(emb, w, b, labels, o.seen).mean(), {}


def _prototype_scores(o, emb, w, b, prototypes):
  return losses.tag_logits(emb, losses.l2_normalize(jnp.asarray(prototypes) * o.tag_masks, -1).T, None, o.tag_masks)


def _proxy_scores(o, emb, w, b, prototypes):
  return losses.tag_logits(emb, w, None, o.tag_masks)


def _unit_proxy_scores(o, emb, w, b, prototypes):
  return losses.tag_logits(emb, losses.l2_normalize(jnp.asarray(w) * o.tag_masks.T, axis=0), None, o.tag_masks)


def _vanilla_scores(o, emb, w, b, prototypes):
  return losses.tag_logits(emb, w, b, None, normalize=False)


LOSSES = {
    "triplet": LossSpec(_label_triplet, _prototype_scores, needs_prototypes=True, logits=False,
                        doc="label-conditioned triplets sampled in the batch (paper rows 1-3)"),
    "triplet_bh": LossSpec(_batch_hard_triplet, _prototype_scores, needs_prototypes=True, logits=False,
                           doc="batch-hard triplets: over the batch, or per category subspace when disentangled "
                               "(config.loss.soft_margin: the soft margin at config.loss.temperature)"),
    "triplet_all": LossSpec(_all_triplets, _prototype_scores, needs_prototypes=True, logits=False,
                            doc="label-conditioned triplets: every valid triplet of the batch, averaged over those "
                                "with a positive loss"),
    "multi_similarity": LossSpec(_multi_similarity, _prototype_scores, needs_prototypes=True, logits=False,
                                 doc="multi-similarity loss with its pair miner (config.loss.ms_*)"),
    "supcon": LossSpec(_supervised_contrastive, _prototype_scores, needs_prototypes=True, logits=False,
                       doc="multi-label supervised contrastive loss (temperature config.loss.temperature)"),
    "proxy": LossSpec(_proxy_bce, _proxy_scores, needs_prototypes=False, logits=True,
                      doc="proxy loss = normalised classification (paper rows 4, 5, 7, 8)"),
    "proxy_nca": LossSpec(_proxy_nca, _unit_proxy_scores, needs_prototypes=False, logits=False,
                          doc="Proxy-NCA for multi-label data (temperature config.loss.temperature)"),
    "vanilla": LossSpec(_vanilla_bce, _vanilla_scores, needs_prototypes=False, logits=True,
                        doc="vanilla classification (paper row 6)"),
}
NAMES = tuple(LOSSES)
# config.loss.sampler="paper": the losses that have the paper's sampler, by name.
PAPER_SAMPLER = {
    "triplet": LossSpec(_paper_triplet, _prototype_scores, needs_prototypes=True, logits=False,
                        gather=_paper_gather, inputs_per_example=3,
                        doc="the paper's triplets: a category, a tag, an anchor and positive with it and a "
                            "negative without it, each embedded as its own input (5 with track regularisation)"),
}
SAMPLERS = ("in_batch", "paper")


def spec(loss_config) -> LossSpec:
  if loss_config.get("sampler", "in_batch") == "paper":
    return PAPER_SAMPLER[loss_config.name]
  return LOSSES[loss_config.name]


def crops_per_track(loss_config) -> int:
  """Excerpts of each track in a batch: two when the track regulariser needs them."""
  return 2 if loss_config.track_weight > 0 else 1


def inputs_per_example(loss_config) -> int:
  """Excerpts embedded per example in a step: what a training step costs, in inputs."""
  s = spec(loss_config)
  track = loss_config.track_weight > 0
  return s.inputs_per_example + 2 * track if s.gather else 1 + track


class Objective:
  """Holds the constant masks; `__call__` and `tag_scores` are pure and jit-friendly.

  Without disentanglement the masks select the complete space: every tag's mask is all
  ones and all tags form one group, so each loss is the same function either way.
  """

  def __init__(self, loss_config, subspace_dims, tag_category, seen=None):
    self.cfg = loss_config
    # [T] 1 for the tags training labels show, 0 for held-out ones (conditions.py): masked
    # out of the losses that score every tag; the others see them as tags nobody has.
    self.seen = np.ones(len(tag_category), np.float32) if seen is None else np.asarray(seen, np.float32)
    self.spec = spec(loss_config)
    self.category_masks = losses.subspace_masks(subspace_dims)  # [S, D]
    self.tag_category = np.asarray(tag_category, np.int32)
    dim = self.category_masks.shape[1]
    if loss_config.disentangled:
      self.tag_masks = self.category_masks[self.tag_category]  # [T, D]
      self.tag_group, self.group_masks = self.tag_category, self.category_masks
    else:
      self.tag_masks = np.ones((len(tag_category), dim), np.float32)
      self.tag_group, self.group_masks = np.zeros_like(self.tag_category), np.ones((1, dim), np.float32)

  def select(self, rng, labels, crops: int):
    """For a loss with its own sampler (spec.gather): which of the batch's excerpts to embed."""
    return self.spec.gather(self, rng, labels, crops)

  def __call__(self, rng, embeddings, tag_weights, tag_bias, labels, sample=None):
    """Mean loss of a batch.

    Args: embeddings: [N, K, D] (K excerpts per track; with the paper's sampler the M
      inputs of `select`); labels: [N, T]; sample: what `select` returned.
    Returns: (scalar loss, dict of scalar metrics).
    """
    first = embeddings[:, 0]
    k_main, k_track = jax.random.split(rng)
    if sample is None:
      loss, aux = self.spec.batch_loss(self, k_main, first, tag_weights, tag_bias, labels)
    else:
      loss, aux = self.spec.batch_loss(self, k_main, embeddings, tag_weights, tag_bias, labels, sample)
    aux["main_loss"] = loss
    if self.cfg.track_weight > 0 and sample is not None:  # the sampler chose anchor, positive, negative
      track = losses.triplet_loss(first, embeddings[:, 3], embeddings[:, 4], self.cfg.margin).mean()
      aux["track_loss"] = track
      loss = loss + self.cfg.track_weight * track
    elif self.cfg.track_weight > 0:
      track = losses.track_triplet_loss(k_track, first, embeddings[:, 1], self.cfg.margin).mean()
      aux["track_loss"] = track
      loss = loss + self.cfg.track_weight * track
    return loss, aux

  def tag_scores(self, embeddings, tag_weights, tag_bias, prototypes=None):
    """Per-tag scores for auto-tagging, [N, D] -> [N, T]: the classifier / proxy outputs,
    or for metric learning models the cosine to each tag's prototype ([T, D], the mean
    training embedding), in the tag's subspace when disentangled."""
    return self.spec.tag_scores(self, embeddings, tag_weights, tag_bias, prototypes)

  def tag_probabilities(self, embeddings, tag_weights, tag_bias, prototypes=None) -> np.ndarray:
    """Tag scores for people: sigmoid of logits, cosines as they are."""
    s = np.asarray(self.tag_scores(embeddings, tag_weights, tag_bias, prototypes))
    return 1 / (1 + np.exp(-s)) if self.spec.logits else s
