"""The paper's Inception backbone and its embedding heads (flax.linen, pure-functional).

Layout is NHWC with H = time frames, W = mel bands. Every piece below is the textbook
operation (nn.Conv, nn.BatchNorm, reduce_window max-pooling), computed in a form that XLA's
CPU backend runs faster, and tested against the textbook form in tests/test_models.py:
1x1 convolutions are dense layers over the channel axis; max-pooling is a separable max
over strided slices (one reduction when window == stride); the stem normalises after its
2x2 pooling (PooledBatchNorm); the stride-2 convolutions' input gradient is one stride-1
convolution of the four polyphase sub-kernels (strided_conv). The figures are in
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import functools
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
  gradient (XLA CPU lowers reduce_window's to a scatter). Non-overlapping patches
  (window == stride): `_patch_max`."""
  if window == stride:
    return _patch_max(x, window)
  return _max_pool_axis(_max_pool_axis(x, 1, window, stride), 2, window, stride)


def _patches(x: jax.Array, window: int) -> list[jax.Array]:
  """The window * window strided views [N, H // window, W // window, C] of x's
  non-overlapping patches (a trailing remainder dropped)."""
  n, h, w, c = x.shape
  h, w = h - h % window, w - w % window
  x6 = x[:, :h, :w].reshape(n, h // window, window, w // window, window, c)
  return [x6[:, :, a, :, b] for a in range(window) for b in range(window)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _patch_max(x: jax.Array, window: int) -> jax.Array:
  """Max of each non-overlapping window x window patch, as element-wise maxima of its
  strided views. The gradient is JAX's rule for a max reduction, bit for bit (an equal
  share to each input equal to the max), written element-wise: XLA's CPU backend runs
  the reduction form (compare, count by reduce_sum, divide) as several slower passes."""
  return functools.reduce(jnp.maximum, _patches(x, window))


def _patch_max_fwd(x, window):
  y = _patch_max(x, window)
  return y, (x, y)


def _patch_max_bwd(window, res, g):
  x, y = res
  hits = [(p == y).astype(g.dtype) for p in _patches(x, window)]
  share = g / functools.reduce(jnp.add, hits)
  d = jnp.stack([h * share for h in hits], axis=-2)  # [n, h', w', window * window, c]
  n, hp, wp, _, c = d.shape
  d = d.reshape(n, hp, wp, window, window, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hp * window, wp * window, c)
  return (jnp.pad(d, ((0, 0), (0, x.shape[1] - d.shape[1]), (0, x.shape[2] - d.shape[2]), (0, 0))),)


_patch_max.defvjp(_patch_max_fwd, _patch_max_bwd)


_NHWC = ("NHWC", "HWIO", "NHWC")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA's "SAME" padding of one axis: (before, after)."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _s2_pads(x: jax.Array, kernel: int) -> list[tuple[int, int]]:
  """The stride-2 "SAME" padding of x's two spatial axes for a kernel x kernel window."""
  return [_same_padding(x.shape[1], kernel, 2), _same_padding(x.shape[2], kernel, 2)]


def _conv_s2(x: jax.Array, w: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, w, (2, 2), _s2_pads(x, w.shape[0]), dimension_numbers=_NHWC)


@jax.custom_vjp
def strided_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  """Stride-2 "SAME" convolution of x [N, H, W, C] with w [k, k, C, F]: nn.Conv's maths.
  Its input gradient is computed as one stride-1 convolution of the output gradient with
  the four polyphase sub-kernels w[r::2, s::2] (the gradient at rows 2u + r only meets
  the taps r, r + 2, ...), then interleaved; XLA's CPU backend would otherwise run an
  input-dilated convolution that multiplies by the dilation's zeros."""
  return _conv_s2(x, w)


def _strided_conv_fwd(x, w):
  return _conv_s2(x, w), (x, w)


def _strided_conv_bwd(residuals, dy):
  x, w = residuals
  k, _, c, f = w.shape
  dw = jax.vjp(lambda w_: _conv_s2(x, w_), w)[1](dy)[0]
  h = (k + 1) // 2  # sub-kernel size
  sub = jnp.pad(w, ((0, 2 * h - k), (0, 2 * h - k), (0, 0), (0, 0))).reshape(h, 2, h, 2, c, f)
  sub = sub[::-1, :, ::-1].transpose(0, 2, 5, 1, 3, 4).reshape(h, h, f, 4 * c)  # [t, t', F, (r, s, C)], flipped
  d = jax.lax.conv_general_dilated(dy, sub.astype(dy.dtype), (1, 1), [(h - 1, h - 1)] * 2, dimension_numbers=_NHWC)
  n, hu, wu, _ = d.shape  # d[u, v, (r, s)] is the gradient of the padded input at (2u + r, 2v + s)
  d = d.reshape(n, hu, wu, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * hu, 2 * wu, c)
  (top, _), (left, _) = _s2_pads(x, k)
  d = jnp.pad(d, ((0, 0), (0, max(0, top + x.shape[1] - d.shape[1])), (0, max(0, left + x.shape[2] - d.shape[2])),
                  (0, 0)))
  return d[:, top:top + x.shape[1], left:left + x.shape[2]], dw


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


class StridedConv(nn.Module):
  """nn.Conv(features, (kernel, kernel), (2, 2), padding="SAME", use_bias=False): the same
  variable, computed by `strided_conv` on CPU (measured faster there) and by nn.Conv's
  own lowering elsewhere."""
  features: int
  kernel: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, self.kernel, x.shape[-1], self.features))
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    return strided_conv(x, w) if jax.default_backend() == "cpu" else _conv_s2(x, w)


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
    elif self.stride == 2:
      x = StridedConv(self.features, self.kernel, self.dtype, name="Conv_0")(x)
    else:
      x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="SAME",
                  use_bias=False, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
    return nn.relu(x)


class PooledBatchNorm(nn.Module):
  """relu(nn.BatchNorm(x)) (the same variables, statistics and running averages), then a
  `window` x `window` max-pool with stride `window`, bit for bit, with the normalisation
  and ReLU at the pooled resolution: x -> relu((x - mean) * a + bias) is monotone in x per
  channel (increasing where a = scale / sqrt(var + eps) >= 0, decreasing otherwise), so
  the max of a patch's outputs is the output of the patch's max input (or of its min,
  taken as minus the max of -x). Only the statistics and the pooling read the
  full-resolution activations."""
  window: int = 2
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    if train:  # flax's statistics: float32, variance as E[x^2] - E[x]^2 clipped at 0
      x32 = x.astype(jnp.float32)
      mean = x32.mean(axis=(0, 1, 2))
      var = jnp.maximum(0.0, (x32 * x32).mean(axis=(0, 1, 2)) - mean * mean)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    else:
      mean, var = ra_mean.value, ra_var.value
    a = jax.lax.rsqrt(var + self.epsilon) * scale
    sign = jnp.where(a >= 0, 1, -1).astype(x.dtype)
    pooled = max_pool(x * sign, self.window, self.window) * sign
    return nn.relu(((pooled - mean) * a + bias).astype(self.dtype))


class Stem(nn.Module):
  """Convolution 5x5, batch norm, ReLU, 2x2 max-pool: ConvBN(features, 5)'s variables and
  maths, with the pooling before the normalisation (PooledBatchNorm)."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(self.features, (5, 5), padding="SAME", use_bias=False, dtype=self.dtype)(x)
    return PooledBatchNorm(2, dtype=self.dtype, name="BatchNorm_0")(x, train)


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
    x = Stem(self.stem_features, self.dtype, name="ConvBN_0")(x.astype(self.dtype), train)
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
