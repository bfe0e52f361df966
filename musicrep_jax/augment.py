"""Training-time audio augmentation, in pure JAX inside the jitted step (#30).

The rendered training music has one soundfont's timbres, dry and clean; real recordings
are mixed in rooms, equalised, compressed and noisy. Each training excerpt gets its own
random draw of the transforms below (each applied with its probability, otherwise the
identity), so that what the model learns to group survives what recording and
production change. Evaluation never augments.

The waveform transforms (gain, noise, saturation) act on float audio; the spectral ones
(reverberation, equalisation, pitch and tempo warps) on the power spectrogram, before
the mel filterbank. Each is one pure function of its per-example parameters; `draw`
draws the parameters (from config.augment, configlib.base) and `waveform` / `spectrum` compose them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def gain(x: jax.Array, db: jax.Array) -> jax.Array:
  """[N, L] audio scaled by db [N] decibels."""
  return x * (10.0 ** (db / 20.0))[:, None]


def reverberate(power: jax.Array, rt60: jax.Array, wet_db: jax.Array, frame_seconds: float) -> jax.Array:
  """[N, T, F] power spectrogram of a synthetic room: each frame plus the frames before it,
  frame t-k weighted by an exponential decay of 60 dB in rt60 [N] seconds, the weights
  summing to wet_db [N] decibels of the direct sound (-inf dB: the identity). It is the
  expected power of the audio convolved with exponentially decaying noise, frame by frame,
  and costs a [T, T] matrix per excerpt instead of a long FFT of the waveform."""
  t = power.shape[1]
  lag = jnp.arange(t)[:, None] - jnp.arange(t)[None, :]  # [T, T]: output frame - input frame
  decay = 10.0 ** (-6.0 * jnp.maximum(lag, 1)[None] * frame_seconds / rt60[:, None, None])  # [N, T, T]
  decay = jnp.where(lag[None] >= 1, decay, 0.0)
  norm = jnp.sum(10.0 ** (-6.0 * jnp.arange(1, t) * frame_seconds / rt60[:, None]), axis=1)  # [N]
  weights = decay * (10.0 ** (wet_db / 10.0) / norm)[:, None, None] + jnp.eye(t)[None]
  return jnp.einsum("nts,nsf->ntf", weights, power)


def add_noise(x: jax.Array, noise: jax.Array, snr_db: jax.Array) -> jax.Array:
  """[N, L] audio plus `noise` [N, L] scaled to snr_db [N] below each excerpt's power
  (+inf dB: the identity)."""
  power = jnp.mean(x ** 2, axis=1) + 1e-10
  scale = jnp.sqrt(power / jnp.mean(noise ** 2, axis=1) * 10.0 ** (-snr_db / 10.0))
  return x + noise * scale[:, None]


def saturate(x: jax.Array, drive: jax.Array) -> jax.Array:
  """Soft clipping tanh(d x) / tanh(d), a static compressor of the peaks; drive d [N] >= 1
  (the excerpts not drawn for it keep their audio: `waveform`'s mask)."""
  d = drive[:, None]
  return jnp.tanh(d * x) / jnp.tanh(d)


def equalise(power: jax.Array, gains_db: jax.Array) -> jax.Array:
  """[N, T, F] power spectrogram times an equaliser curve: gains_db [N, K] at K points
  evenly spaced in log frequency from bin 1 to the last, linear in between (bin 0 takes
  bin 1's gain)."""
  bins = power.shape[-1]
  anchors = np.log(np.geomspace(1, bins - 1, gains_db.shape[1]))
  where = np.log(np.maximum(np.arange(bins), 1))
  curve = jax.vmap(lambda g: jnp.interp(where, anchors, g))(gains_db)  # [N, F]
  return power * (10.0 ** (curve / 10.0))[:, None, :]


def warp(power: jax.Array, ratio: jax.Array, axis: int) -> jax.Array:
  """[N, T, F] resampled along `axis` (1: time, 2: frequency) by ratio [N]: output point i
  reads input point i / ratio, linearly interpolated, the last point held past the end.
  ratio 2^(s/12) along frequency shifts the pitch by s semitones; along time it plays
  the excerpt `ratio` times slower."""
  n = power.shape[axis]
  pos = jnp.minimum(jnp.arange(n)[None] / ratio[:, None], n - 1)  # [N, n]
  lo = jnp.floor(pos).astype(jnp.int32)
  hi = jnp.minimum(lo + 1, n - 1)
  w = pos - lo
  shape = (-1, n, 1) if axis == 1 else (-1, 1, n)
  take = lambda i: jnp.take_along_axis(power, i.reshape(shape), axis=axis)
  return take(lo) * (1 - w.reshape(shape)) + take(hi) * w.reshape(shape)


def draw(rng: jax.Array, n: int, cfg) -> dict:
  """Per-example parameters of every transform for n excerpts; a transform not applied to
  an excerpt (probability cfg[name]) gets its identity parameters."""
  k = iter(jax.random.split(rng, 15))
  u = lambda lo, hi: jax.random.uniform(next(k), (n,), minval=lo, maxval=hi)
  on = lambda p: jax.random.uniform(next(k), (n,)) < p
  semis = cfg["pitch_semitones"]
  return {
      "gain_db": u(-cfg["gain_db"], cfg["gain_db"]),
      "rt60": u(*cfg["rt60"]),
      "wet_db": jnp.where(on(cfg["reverb"]), u(*cfg["reverb_wet_db"]), -jnp.inf),
      "snr_db": jnp.where(on(cfg["noise"]), u(*cfg["snr_db"]), jnp.inf),
      "drive": u(*cfg["drive"]),
      "saturate": on(cfg["saturate"]),
      "eq_db": jnp.where(on(cfg["eq"])[:, None], jax.random.uniform(
          next(k), (n, cfg["eq_bands"]), minval=-cfg["eq_db"], maxval=cfg["eq_db"]), 0.0),
      "pitch": jnp.where(on(cfg["pitch"]), 2.0 ** (u(-semis, semis) / 12.0), 1.0),
      "tempo": jnp.where(on(cfg["tempo"]), 1.0 + u(-cfg["tempo_range"], cfg["tempo_range"]), 1.0),
      "key": next(k),
  }


def waveform(x: jax.Array, p: dict) -> jax.Array:
  """Float audio [N, L] with gain, noise and saturation applied."""
  x = add_noise(gain(x, p["gain_db"]), jax.random.normal(p["key"], x.shape), p["snr_db"])
  return jnp.where(p["saturate"][:, None], saturate(x, p["drive"]), x)


def spectrum(power: jax.Array, p: dict, frame_seconds: float) -> jax.Array:
  """Power spectrogram [N, T, F] reverberated, equalised, then pitch- and tempo-warped."""
  power = reverberate(power, p["rt60"], p["wet_db"], frame_seconds)
  return warp(warp(equalise(power, p["eq_db"]), p["pitch"], axis=2), p["tempo"], axis=1)
