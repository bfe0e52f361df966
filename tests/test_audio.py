"""Every supported format decodes to the same middle 30 s; unsupported files are named."""

import numpy as np
import pytest
from scipy import signal

from musicrep_jax.data import audio

RATE = 44100
# Every extension users have, and what its codec does to timing: lossy codecs add an
# encoder delay (AAC ~1024 samples, Opus ~312 at 48 kHz), and a raw ADTS .aac stream has
# no index, so its duration (and the middle) is an estimate from the bit rate.
MAX_LAG_S = {".aac": 0.25}


def chirp(seconds):
  t = np.arange(int(RATE * seconds)) / RATE
  return 0.3 * np.sin(2 * np.pi * (220 + 5 * t) * t)  # the frequency tells where in the file a sample is


def best_lag(x, ref, max_lag):
  """The shift of x against ref (within +-max_lag samples) that correlates best."""
  core = ref[max_lag: len(ref) - max_lag]
  scores = signal.correlate(x, core, mode="valid", method="fft")  # lag l at index max_lag + l
  return int(np.argmax(scores[: 2 * max_lag + 1])) - max_lag


@pytest.mark.parametrize("ext", audio.AUDIO_EXTENSIONS)
def test_each_format_decodes_the_middle_30_seconds(tmp_path, ext):
  x = chirp(40.0)
  path = str(tmp_path / f"song{ext}")
  audio.encode(path, np.stack([x, x], 1), RATE)
  got = audio.decode(path).astype(np.float32) / 32767
  assert len(got) == 30 * 16000
  ref = audio.soxr.resample(x.astype(np.float32), RATE, 16000)[5 * 16000: 35 * 16000]
  max_lag = int(16000 * MAX_LAG_S.get(ext, 0.1))
  lag = best_lag(got, ref, max_lag)
  a = got[max_lag + lag: len(got) - max_lag + lag]
  b = ref[max_lag: len(ref) - max_lag]
  assert np.corrcoef(a, b)[0, 1] > 0.98, ext


def test_unsupported_and_broken_files_are_named(tmp_path):
  (tmp_path / "notes.txt").write_text("not audio")
  with pytest.raises(audio.BadAudio, match=r"not a supported audio format \(\.txt"):
    audio.decode(str(tmp_path / "notes.txt"))
  (tmp_path / "broken.m4a").write_bytes(b"\0" * 5000)
  with pytest.raises(audio.BadAudio, match="not a readable audio file"):
    audio.decode(str(tmp_path / "broken.m4a"))
