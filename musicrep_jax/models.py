"""The paper's Inception backbone and its embedding heads (flax.linen, pure-functional).

Layout is NHWC with H = time frames, W = mel bands. 1x1 convolutions are dense
layers over the channel axis and max-pooling is a separable max over strided slices: both
lower to faster XLA CPU code than the generic convolution / reduce-window ops and
are the same maths.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _max_pool_axis(x: jax.Array, axis: int, window: int, stride: int) -> jax.Array:
  """Max over `window` positions every `stride` along one axis; -inf padding of
  window // 2 on both sides unless window == stride (then a trailing remainder is dropped)."""
  if window == stride:
    n = x.shape[axis] - x.shape[axis] % window
    x = jax.lax.slice_in_dim(x, 0, n, axis=axis)
    return x.reshape(x.shape[:axis] + (n // window, window) + x.shape[axis + 1:]).max(axis=axis + 1)
  pad = [(0, 0)] * x.ndim
  pad[axis] = (window // 2, window // 2)
  x = jnp.pad(x, pad, constant_values=-jnp.inf)
  n_out = (x.shape[axis] - window) // stride + 1
  out = None
  for i in range(window):
    s = jax.lax.slice_in_dim(x, i, i + stride * (n_out - 1) + 1, stride, axis)
    out = s if out is None else jnp.maximum(out, s)
  return out


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
  """Max over `window` x `window` patches with `stride`, padded as `_max_pool_axis`; [N, H, W, C].
  Separable (rows, then columns): 2 x window slices instead of window^2, and a cheaper
  gradient (XLA CPU lowers reduce_window's to a scatter)."""
  return _max_pool_axis(_max_pool_axis(x, 1, window, stride), 2, window, stride)


class ConvBN(nn.Module):
  """Convolution (1x1 as a dense layer), batch norm, ReLU."""
  features: int
  kernel: int = 1
  stride: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    if self.kernel == 1:
      x = nn.Dense(self.features, use_bias=False, dtype=self.dtype)(x[:, :: self.stride, :: self.stride])
    else:
      x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="SAME",
                  use_bias=False, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
    return nn.relu(x)


class InceptionBlock(nn.Module):
  """A naive Inception module with stride-2 convolutions (1x1, 3x3, 5x5, 3x3 max-pool),
  then a dimension-reduction module (1x1; 1x1->3x3; 1x1->5x5; pool->1x1) with
  `features` output maps."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    q = self.features // 4
    x = jnp.concatenate([
        ConvBN(q, 1, 2, self.dtype)(x, train),
        ConvBN(q, 3, 2, self.dtype)(x, train),
        ConvBN(q, 5, 2, self.dtype)(x, train),
        max_pool(x, 3, 2),
    ], axis=-1)
    return jnp.concatenate([
        ConvBN(q, 1, 1, self.dtype)(x, train),
        ConvBN(q, 3, 1, self.dtype)(ConvBN(q, 1, 1, self.dtype)(x, train), train),
        ConvBN(q, 5, 1, self.dtype)(ConvBN(q, 1, 1, self.dtype)(x, train), train),
        ConvBN(self.features - 3 * q, 1, 1, self.dtype)(max_pool(x, 3, 1), train),
    ], axis=-1)


class Inception(nn.Module):
  """Conv 5x5 + 2x2 max-pool, `blocks` Inception blocks, global mean+max pool, then (hidden > 0)
  dense + ReLU; hidden = 0 returns the pooled features."""
  stem_features: int = 64
  features: int = 256
  blocks: int = 6
  hidden: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = max_pool(ConvBN(self.stem_features, 5, 1, self.dtype)(x.astype(self.dtype), train), 2, 2)
    for _ in range(self.blocks):
      x = InceptionBlock(self.features, self.dtype)(x, train)
    # The paper does not say how the remaining time/frequency axes are pooled: mean and max.
    x = jnp.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
    if not self.hidden:
      return x
    return nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))


class MusicEncoder(nn.Module):
  """Log-mel [N, T, F, 1] -> embedding [N, D]; also owns the per-tag weights.

  head="relu" (the paper): the embedding is ReLU(Dense(D)) of the backbone's pooled
  features, nothing after it but the per-tag weights. head="linear": a ReLU(Dense(hidden))
  layer, then a linear Dense(D) embedding (this project's earlier head).
  subdense=False: one dense layer of D = sum(subspace_dims) units, whose category
  subspaces are masks over it; subdense=True: one dense layer of `subspace_dims[s]` units
  per category, concatenated (the paper's disentangled classifier).
  `tag_weights` [D, T] are the proxies or classifier weights, `tag_bias` [T] is used
  only by the vanilla classifier.
  """
  num_tags: int
  subspace_dims: Sequence[int] = (64, 64, 64, 64)
  head: str = "relu"
  subdense: bool = False
  tag_weight_scale: float = 1.0  # init std x sqrt(D): 1 for unit-norm proxies
  stem_features: int = 64
  features: int = 256
  blocks: int = 6
  hidden: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.head not in ("relu", "linear"):
      raise ValueError(f"unknown head {self.head!r}: use 'relu' or 'linear'")
    hidden = self.hidden if self.head == "linear" else 0
    h = Inception(self.stem_features, self.features, self.blocks, hidden, self.dtype, name="backbone")(x, train)
    act = nn.relu if self.head == "relu" else (lambda v: v)
    if self.subdense:
      emb = jnp.concatenate([act(nn.Dense(d, dtype=self.dtype, name=f"subdense_{i}")(h))
                             for i, d in enumerate(self.subspace_dims)], axis=-1)
    else:
      emb = act(nn.Dense(sum(self.subspace_dims), dtype=self.dtype, name="embedding")(h))
    dim = sum(self.subspace_dims)
    self.param("tag_weights", nn.initializers.normal(self.tag_weight_scale / dim**0.5), (dim, self.num_tags))
    self.param("tag_bias", nn.initializers.zeros, (self.num_tags,))
    return emb.astype(jnp.float32)
