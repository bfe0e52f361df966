"""The JAX log-mel front end against librosa."""

import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from musicrep_jax import frontend


@pytest.mark.parametrize("sr,n_fft,n_mels", [(16000, 1024, 128), (22050, 1024, 128), (16000, 512, 64)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels):
  ours = frontend.mel_filterbank(sr, n_fft, n_mels)
  ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).T
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6 * ref.max())  # float32 rounding


def test_power_spectrogram_matches_librosa():
  t = np.arange(48000) / 16000
  x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.random.default_rng(0).normal(0, 0.1, 48000)]).astype(np.float32)
  ours = np.asarray(frontend.power_spectrogram(jnp.asarray(x), 1024, 375))
  ref = np.abs(librosa.stft(x, n_fft=1024, hop_length=375, center=True, pad_mode="constant")) ** 2
  ref = np.swapaxes(ref, 1, 2)
  assert ours.shape == ref.shape == (2, 129, 513)
  # Tolerance: 1e-5 of each signal's peak power (float32 FFTs of different libraries).
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * ref.max())


def test_log_mel_compression_and_standardisation():
  x = (np.random.default_rng(1).normal(0, 0.2, (1, 16000)) * 32767).astype(np.int16)
  ours = np.asarray(frontend.log_mel(jnp.asarray(x), sample_rate=16000, n_fft=512, hop=250, n_mels=40))
  s = librosa.feature.melspectrogram(y=x[0].astype(np.float32) / 32768, sr=16000, n_fft=512, hop_length=250,
                                     n_mels=40, center=True, pad_mode="constant", power=2.0)
  ref = (np.log10(1 + 10 * s.T) - 0.2) / 0.25
  assert ours.shape == (1, 65, 40, 1)
  np.testing.assert_allclose(ours[0, ..., 0], ref, atol=1e-3)
