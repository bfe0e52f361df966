"""Decoding and checking audio files (WAV, FLAC, MP3, OGG through libsndfile)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

from musicrep_jax.data.features import SAMPLE_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif")


class BadAudio(ValueError):
  """A file that cannot be used; the message says why."""


def decode(path: str, *, sample_rate: int = SAMPLE_RATE, min_seconds: float = 3.0,
           max_seconds: float | None = 30.0) -> np.ndarray:
  """Mono int16 audio of a file at `sample_rate`; raises BadAudio with the reason.

  Multi-channel audio is averaged, other sample rates are resampled, files longer
  than `max_seconds` keep their middle `max_seconds`.
  """
  try:
    info = sf.info(path)
  except Exception as e:  # libsndfile's errors are plain RuntimeErrors / LibsndfileErrors
    raise BadAudio(f"not a readable audio file ({str(e).splitlines()[0]})") from e
  if info.frames <= 0 or info.samplerate <= 0:
    raise BadAudio("empty file (no audio frames)")
  start, frames = 0, -1
  if max_seconds is not None and info.frames > max_seconds * info.samplerate:
    frames = int(max_seconds * info.samplerate)
    start = (info.frames - frames) // 2
  try:
    x, sr = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
  except Exception as e:
    raise BadAudio(f"truncated or corrupt audio ({str(e).splitlines()[0]})") from e
  if x.shape[0] == 0:
    raise BadAudio("empty file (no audio frames)")
  if not np.all(np.isfinite(x)):
    raise BadAudio("samples contain NaN or infinity")
  x = x.mean(axis=1)
  if sr != sample_rate:
    x = soxr.resample(x, sr, sample_rate)
  if len(x) < min_seconds * sample_rate:
    raise BadAudio(f"too short ({len(x) / sample_rate:.2f} s; at least {min_seconds:g} s needed)")
  peak = float(np.max(np.abs(x)))
  if peak < 1e-4:
    raise BadAudio("silent (peak below -80 dBFS)")
  return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
