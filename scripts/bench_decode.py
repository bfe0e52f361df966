"""Decode speed of libsndfile against FFmpeg (PyAV) on the formats both read.

  python scripts/bench_decode.py [--seconds=180] [--repeats=5]

Writes a stereo 44.1-kHz test signal of --seconds in each format, then times each
decoder reading its middle 30 s (what the builders and `search` read), alternating the
two decoders, and prints the median milliseconds per file and their ratio. The faster
one is what musicrep_jax.data.audio uses first for that format.
"""

import os
import sys
import tempfile
import time

import numpy as np

from musicrep_jax.data import audio


def main(seconds: float = 180, repeats: int = 5):
  rate = 44100
  rng = np.random.default_rng(0)
  t = np.arange(int(rate * seconds)) / rate
  x = 0.2 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((len(t), 2))
  print(f"{seconds:g}-s stereo 44.1 kHz file, middle 30 s decoded; median of {repeats} alternating runs")
  print(f"{'format':<7} {'libsndfile ms':>13} {'FFmpeg ms':>10} {'FFmpeg/libsndfile':>18}")
  with tempfile.TemporaryDirectory() as d:
    for ext in (".wav", ".flac", ".ogg", ".mp3", ".aiff"):
      path = os.path.join(d, "x" + ext)
      audio.encode(path, x, rate)
      times = {"sf": [], "ff": []}
      for _ in range(repeats):
        for key, read in (("sf", audio._read_soundfile), ("ff", audio._read_ffmpeg)):  # pylint: disable=protected-access
          start = time.perf_counter()
          y, _ = read(path, 30.0)
          times[key].append(time.perf_counter() - start)
          assert abs(len(y) - 30 * rate) < rate // 10, (ext, key, len(y))
      sf_ms, ff_ms = 1000 * np.median(times["sf"]), 1000 * np.median(times["ff"])
      print(f"{ext:<7} {sf_ms:>13.1f} {ff_ms:>10.1f} {ff_ms / sf_ms:>17.2f}x", flush=True)


if __name__ == "__main__":
  opts = dict(a.lstrip("-").split("=") for a in sys.argv[1:])
  main(float(opts.get("seconds", 180)), int(opts.get("repeats", 5)))
