"""Log-mel front end in JAX, run inside the jitted step.

Matches librosa: `librosa.filters.mel(sr, n_fft, n_mels)` (Slaney scale and
normalisation) and `librosa.stft(center=True, pad_mode="constant", window="hann")`
power spectrogram. Compression log10(1 + 10 S), then the paper's fixed
standardisation (x - 0.2) / 0.25.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import augment as augment_lib

LOG_MEAN, LOG_STD = 0.2, 0.25


def _hz_to_mel(f):
  """Slaney mel scale: linear below 1 kHz, logarithmic above."""
  f = np.asarray(f, np.float64)
  min_log_hz, lin_step, log_step = 1000.0, 200.0 / 3, np.log(6.4) / 27.0
  return np.where(f < min_log_hz, f / lin_step,
                  min_log_hz / lin_step + np.log(np.maximum(f, 1e-10) / min_log_hz) / log_step)


def _mel_to_hz(m):
  m = np.asarray(m, np.float64)
  min_log_hz, lin_step, log_step = 1000.0, 200.0 / 3, np.log(6.4) / 27.0
  min_log_mel = min_log_hz / lin_step
  return np.where(m < min_log_mel, m * lin_step, min_log_hz * np.exp(log_step * (m - min_log_mel)))


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
  """[n_fft // 2 + 1, n_mels] triangular filters, each normalised to unit area (Slaney)."""
  fmax = sample_rate / 2 if fmax is None else fmax
  fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
  mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
  lower, center, upper = mel_pts[:-2, None], mel_pts[1:-1, None], mel_pts[2:, None]
  rising = (fft_freqs[None] - lower) / (center - lower)
  falling = (upper - fft_freqs[None]) / (upper - center)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  weights *= (2.0 / (upper - lower))
  return weights.T.astype(np.float32)


def power_spectrogram(audio: jax.Array, n_fft: int, hop: int) -> jax.Array:
  """|STFT|^2 of [batch, samples] float audio -> [batch, frames, n_fft // 2 + 1].

  Centered frames (zero padding of n_fft // 2 on both sides) with a periodic Hann window.
  """
  pad = n_fft // 2
  x = jnp.pad(audio, ((0, 0), (pad, pad)))
  n_frames = 1 + (x.shape[-1] - n_fft) // hop
  idx = hop * jnp.arange(n_frames)[:, None] + jnp.arange(n_fft)[None, :]
  window = jnp.asarray(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft), audio.dtype)
  spec = jnp.fft.rfft(x[:, idx] * window, axis=-1)
  return jnp.real(spec) ** 2 + jnp.imag(spec) ** 2


def log_mel(audio: jax.Array, *, sample_rate: int, n_fft: int, hop: int, n_mels: int,
            augment=None) -> jax.Array:
  """int16 or float [batch, samples] -> standardised log-mel [batch, frames, n_mels, 1] (NHWC).

  augment: optional per-example parameters of augment.draw (training only): the waveform
  transforms act on the float audio, the spectral ones on the power spectrogram.
  """
  if audio.dtype == jnp.int16:
    audio = audio.astype(jnp.float32) / 32768.0
  if augment is not None:
    audio = augment_lib.waveform(audio, augment)
  power = power_spectrogram(audio, n_fft, hop)
  if augment is not None:
    power = augment_lib.spectrum(power, augment, hop / sample_rate)
  mel = power @ jnp.asarray(mel_filterbank(sample_rate, n_fft, n_mels))
  x = jnp.log10(1.0 + 10.0 * mel)
  return ((x - LOG_MEAN) / LOG_STD)[..., None]
