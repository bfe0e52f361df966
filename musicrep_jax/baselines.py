"""Baselines: what the evaluation's numbers are next to no learning at all.

A config with `config.baseline` set is evaluated, not trained, by every evaluator that
applies (`main` skips training for it). Tags are scored by cosine to each tag's
prototype (its mean training embedding), as for metric-learning models.

  "random":    a random Gaussian vector per excerpt, seeded by the excerpt's audio: random
               neighbours, and chance for every triplet task (track triplets included);
  "untrained": the config's network with its random initial weights (seed train.seed);
  "logmel":    hand-made features: mean and standard deviation of each log-mel band.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import objective
from musicrep_jax import train

KINDS = ("random", "untrained", "logmel")


def log_mel_statistics(log_mel, audio):
  """[N, 2 * mels]: the mean and standard deviation over time of each log-mel band of
  each int16 excerpt [N, L] (log_mel: a model's front end)."""
  x = log_mel(audio)[..., 0]  # [N, frames, mels]
  return jnp.concatenate([x.mean(axis=1), x.std(axis=1)], axis=-1)


class Baseline(train.Setup):
  """A setup whose embedding is the baseline's (the rest: data, vocabulary, evaluators)."""

  def __init__(self, config, builder):
    super().__init__(config, builder)
    self.kind = config.baseline
    if self.kind == "logmel":  # 2 x n_mels dimensions, no subspaces
      dims = (2 * config.audio.n_mels, 0, 0, 0)
      self.dim_category = np.zeros(dims[0], int)
      self.objective = objective.Objective(config.loss, dims, self.tag_category, ~self.held_out)

  def state(self):
    if self.kind == "untrained":
      return self.init_state(self.config.train.seed)
    t = len(self.tag_names)
    return {"params": {"tag_weights": np.zeros((len(self.dim_category), t), np.float32),
                       "tag_bias": np.zeros(t, np.float32)}}

  def _random(self, audio):
    """A standard normal vector per row, seeded by a hash of the row's samples."""
    weights = jnp.asarray(np.random.default_rng(0).integers(1, 2**15, audio.shape[1]), jnp.int32)
    hashes = jnp.sum(audio.astype(jnp.int32) * weights, axis=1)
    keys = jax.vmap(lambda h: jax.random.fold_in(jax.random.key(self.config.train.seed), h))(hashes)
    return jax.vmap(lambda k: jax.random.normal(k, (len(self.dim_category),)))(keys)

  def _logmel(self, audio):
    return log_mel_statistics(self.log_mel, audio)

  @functools.cached_property
  def embed_fn(self):
    if self.kind == "untrained":
      return super().embed_fn
    fn = self._random if self.kind == "random" else self._logmel
    return jax.jit(lambda state, audio: fn(audio))
