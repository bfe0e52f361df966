"""Where a train step's wall time goes (#28): the shipped step against variants, in one
process, timed windows alternating between them, so that load hits them alike.

A knockout removes work (a gradient stopped, the FFT replaced by a copy of the same
shape); its speed-up bounds what any faster form of that work could gain. A lever is a
candidate faster form of the same function.

  python scripts/step_knockouts.py --preset=default --config=proxy_dis \
    --variants=shipped,no_fft,strided_nograd,stem_nograd,stem_taps [--windows=9 --steps=10]

Variants: shipped; no_fft (the power spectrogram is the squared frames' first
n_fft // 2 + 1 samples: no FFT); strided_nograd (the stride-2 convolutions' kernels get no
gradient); stem_nograd (the stem's kernel gets none, so nothing is backpropagated through
its full-resolution batch norm statistics either); stem_taps (lever: the stem's kernel
gradient as one matrix product of its 25 shifted inputs with the output gradient);
strided_s2d (lever: the stride-2 convolutions' kernel gradients as stride-1 ones on the
space-to-depth input); bn_vjp (lever: each ConvBN's batch norm and ReLU with the closed-form
backward pass, a jax.custom_vjp); xla:OPTION=VALUE (the shipped step compiled with one XLA
compiler option, e.g. xla:xla_cpu_enable_fast_min_max=true; a list value joined by "+",
e.g. xla:xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE+LIBRARY_FUSION_TYPE_ELTWISE).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from musicrep_jax.tools import perf  # pylint: disable=wrong-import-position  (its flags; sets the environment)
from absl import app, flags  # pylint: disable=wrong-import-position

_CONFIG = flags.DEFINE_string("config", "proxy_dis", "The config to time.")
_VARIANTS = flags.DEFINE_list("variants", ["shipped", "no_fft", "strided_nograd", "stem_nograd"], "Variants to time.")


def _variants():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from musicrep_jax import frontend, models  # pylint: disable=import-outside-toplevel

  def no_fft(audio, n_fft, hop):
    x = jnp.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)))
    idx = hop * jnp.arange(1 + (x.shape[-1] - n_fft) // hop)[:, None] + jnp.arange(n_fft // 2 + 1)[None, :]
    return x[:, idx] ** 2

  def conv_same(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=models._NHWC)  # pylint: disable=protected-access

  @jax.custom_vjp
  def taps_conv(x, w):
    return conv_same(x, w)

  def taps_bwd(res, dy):
    x, w = res
    k, _, c, f = w.shape
    n, h, wd, _ = x.shape
    xp = jnp.pad(x, ((0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2), (0, 0)))
    taps = jnp.concatenate([xp[:, i:i + h, j:j + wd] for i in range(k) for j in range(k)], -1)
    dw = jnp.einsum("nhwt,nhwf->tf", taps, dy).reshape(k, k, c, f)
    return jax.vjp(lambda x_: conv_same(x_, w), x)[1](dy)[0], dw

  taps_conv.defvjp(lambda x, w: (conv_same(x, w), (x, w)), taps_bwd)

  def stem(conv):
    class Conv(nn.Module):
      features: int
      @nn.compact
      def __call__(self, x):
        w = self.param("kernel", nn.initializers.lecun_normal(), (5, 5, x.shape[-1], self.features))
        return conv(x, w)

    class Stem(nn.Module):
      features: int
      dtype: jnp.dtype = jnp.float32
      @nn.compact
      def __call__(self, x, train):
        x = Conv(self.features, name="Conv_0")(x)
        return models.PooledBatchNorm(2, dtype=self.dtype, name="BatchNorm_0")(x, train)
    return Stem

  def s2d_kernel_gradient(x, dy, k):
    """The stride-2 convolution's kernel gradient as a stride-1 one on the space-to-depth input."""
    (top, _), (left, _) = models._s2_pads(x, k)  # pylint: disable=protected-access
    h, (u, v) = (k + 1) // 2, dy.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (top, 2 * (u + h - 1) - x.shape[1] - top), (left, 2 * (v + h - 1) - x.shape[2] - left),
                     (0, 0)))
    n, hh, ww, c = xp.shape
    z = xp.reshape(n, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hh // 2, ww // 2, 4 * c)
    conv = lambda w2: jax.lax.conv_general_dilated(z, w2, (1, 1), "VALID", dimension_numbers=models._NHWC)  # pylint: disable=protected-access
    d = jax.vjp(conv, jnp.zeros((h, h, 4 * c, dy.shape[-1]), dy.dtype))[1](dy)[0]
    return d.reshape(h, h, 2, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(2 * h, 2 * h, c, -1)[:k, :k]

  @jax.custom_vjp
  def strided_s2d(x, w):
    return models._conv_s2(x, w)  # pylint: disable=protected-access

  def strided_s2d_bwd(res, dy):
    x, w = res
    dx, _ = models._strided_conv_bwd(res, dy)  # pylint: disable=protected-access
    return dx, s2d_kernel_gradient(x, dy, w.shape[0])

  strided_s2d.defvjp(lambda x, w: (models._conv_s2(x, w), (x, w)), strided_s2d_bwd)  # pylint: disable=protected-access

  @jax.custom_vjp
  def bn_relu(x, scale, bias):
    """relu(batch norm of x in training mode), flax's statistics and order of operations."""
    return bn_relu_fwd(x, scale, bias)[0]

  def bn_relu_fwd(x, scale, bias):
    mean = x.mean(axis=(0, 1, 2))
    var = jnp.maximum(0.0, (x * x).mean(axis=(0, 1, 2)) - mean * mean)
    r = jax.lax.rsqrt(var + 1e-5)
    y = nn.relu((x - mean) * (r * scale) + bias)
    return (y, mean, var), (x, mean, r, scale, y)

  def bn_relu_bwd(res, g):
    """The closed form: two reductions over the masked output gradient, one pass for dx."""
    x, mean, r, scale, y = res
    dy = jnp.where(y > 0, g[0], 0.0)
    xhat = (x - mean) * r
    n = x.shape[0] * x.shape[1] * x.shape[2]
    dbias, dscale = dy.sum(axis=(0, 1, 2)), (dy * xhat).sum(axis=(0, 1, 2))
    dx = (scale * r / n) * (n * dy - dbias - xhat * dscale)
    return dx, dscale, dbias  # the statistics' own outputs feed only the running averages: no gradient

  bn_relu.defvjp(bn_relu_fwd, bn_relu_bwd)

  class ConvBNVjp(models.ConvBN):
    @nn.compact
    def __call__(self, x, train):
      if self.kernel == 1:
        x = nn.Dense(self.features, use_bias=False, dtype=self.dtype)(x[:, :: self.stride, :: self.stride])
      elif self.stride == 2:
        x = models.StridedConv(self.features, self.kernel, self.dtype, name="Conv_0")(x)
      else:
        x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="SAME",
                    use_bias=False, dtype=self.dtype)(x)
      if not train:
        return nn.relu(nn.BatchNorm(use_running_average=True, momentum=0.9, dtype=self.dtype)(x))
      return _BN(name="BatchNorm_0")(x)

  class _BN(nn.Module):
    @nn.compact
    def __call__(self, x):
      c = x.shape[-1]
      ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
      ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
      scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
      bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
      y, mean, var = bn_relu(x, scale, bias)
      if not self.is_initializing():
        ra_mean.value = 0.9 * ra_mean.value + 0.1 * jax.lax.stop_gradient(mean)
        ra_var.value = 0.9 * ra_var.value + 0.1 * jax.lax.stop_gradient(var)
      return y

  strided = models.strided_conv
  return {
      "bn_vjp": {(models, "ConvBN"): ConvBNVjp},
      "strided_s2d": {(models, "strided_conv"): strided_s2d},
      "shipped": {},
      "no_fft": {(frontend, "power_spectrogram"): no_fft},
      "strided_nograd": {(models, "strided_conv"): lambda x, w: strided(x, jax.lax.stop_gradient(w))},
      "stem_nograd": {(models, "Stem"): stem(lambda x, w: conv_same(x, jax.lax.stop_gradient(w)))},
      "stem_taps": {(models, "Stem"): stem(taps_conv)},
  }


def main(_):
  import numpy as np  # pylint: disable=import-outside-toplevel
  variants = _variants()
  unknown = sorted(set(_VARIANTS.value) - set(variants) - {v for v in _VARIANTS.value if v.startswith("xla:")})
  if unknown or "shipped" not in _VARIANTS.value:
    raise app.UsageError(f"--variants: give shipped and any of {sorted(variants)} (unknown: {unknown})")
  prepared = {}
  for name in _VARIANTS.value:
    patches = variants.get(name, {})
    saved = {k: getattr(*k) for k in patches}
    for (module, attr), value in patches.items():
      setattr(module, attr, value)
    try:
      prepared[name] = p = perf._prepare(_CONFIG.value)  # traced and compiled with the variant in place  # pylint: disable=protected-access
    finally:
      for (module, attr), value in saved.items():
        setattr(module, attr, value)
    if name.startswith("xla:"):  # the shipped step compiled with one XLA option
      key, _, text = name[4:].partition("=")
      text = text.replace("+", ",")  # a list value (--variants is itself a comma-separated list)
      value = {"true": True, "false": False}.get(text.lower(), text)
      value = value if isinstance(value, bool) or not text.isdigit() else int(text)
      p["update"] = p["setup"].update_fn.lower(p["state"], p["batch"], p["lr"], p["rng"]).compile(
          compiler_options={key: value})
    perf._jax_window(prepared[name], 2)  # pylint: disable=protected-access
  rates = {n: [] for n in prepared}
  for _ in range(perf._WINDOWS.value):  # pylint: disable=protected-access
    for n, p in prepared.items():
      rates[n].append(perf._jax_window(p, perf._STEPS.value))  # pylint: disable=protected-access
  base = np.array(rates["shipped"])
  print(f"{_CONFIG.value}, preset {perf._PRESET.value}: median of {perf._WINDOWS.value} alternating windows of "  # pylint: disable=protected-access
        f"{perf._STEPS.value} steps")  # pylint: disable=protected-access
  for n, r in rates.items():
    print(f"{n:16s} {np.median(r):7.1f} ex/s   x{np.median(np.array(r) / base):.3f} of shipped "
          f"(per-window ratios {np.min(np.array(r) / base):.2f}-{np.max(np.array(r) / base):.2f})")


if __name__ == "__main__":
  app.run(main)
