"""Render speed and memory of synth_music's renderer with a given soundfont: the previous
way (the soundfont parsed again for every track, from bytes read once) against the
current one (parsed once per process; every track renders on a fresh copy that shares
the parsed data). Alternating windows on the same tracks; prints tracks/s, the ratio,
and this process's peak memory.

  python scripts/bench_soundfont.py [--soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2] [--tracks=20] [--windows=5]
"""

import argparse
import resource
import statistics
import time

import numpy as np

from musicrep_jax.data import features
from musicrep_jax.data import synth


def _render_reparsing(spec, soundfont: str, data: bytes) -> np.ndarray:
  """The previous renderer's cost: a fresh synthesizer parsed from the soundfont's bytes."""
  from tinysoundfont import _tinysoundfont  # pylint: disable=import-outside-toplevel
  fresh = _tinysoundfont.SoundFont(data)
  del fresh  # the parse is the cost; the rendering itself is the same as below
  return synth.render_track(spec, features.SAMPLE_RATE, soundfont)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--soundfont", default=synth.default_soundfont())
  parser.add_argument("--tracks", type=int, default=20)
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=9.0, help="track length (the default preset's)")
  args = parser.parse_args()
  specs = [synth.sample_track_spec(s, args.seconds) for s in range(args.tracks)]
  with open(args.soundfont, "rb") as f:
    data = f.read()
  t = time.time()
  synth.render_track(specs[0], features.SAMPLE_RATE, args.soundfont)  # parses once
  print(f"soundfont {args.soundfont} ({len(data) / 2**20:.0f} MB): first track (with the parse) {time.time() - t:.2f} s")
  rates = {"parse per track (before)": [], "parse once (now)": []}
  for _ in range(args.windows):
    for name in rates:
      t = time.time()
      for spec in specs:
        if name.startswith("parse per"):
          _render_reparsing(spec, args.soundfont, data)
        else:
          synth.render_track(spec, features.SAMPLE_RATE, args.soundfont)
      rates[name].append(len(specs) / (time.time() - t))
  for name, r in rates.items():
    print(f"{name:26s} median {statistics.median(r):6.1f} tracks/s  (windows: {', '.join(f'{x:.1f}' for x in r)})")
  ratio = statistics.median(rates["parse once (now)"]) / statistics.median(rates["parse per track (before)"])
  print(f"speed-up {ratio:.1f}x; peak memory of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
  main()
