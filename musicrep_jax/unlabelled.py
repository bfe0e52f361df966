"""Unlabelled recordings beside the labelled batches (#30): each training step adds two
excerpts of each of a few tracks from a folder of the user's own audio, and a contrastive
term (losses.track_contrastive_loss) pulls a track's two excerpts together and the other
tracks' apart, so the network also learns what real recordings share.

The excerpts are a pure function of (seed, step, process), so a resumed run draws the
same ones.
"""

from __future__ import annotations

import os

import numpy as np

from musicrep_jax import errors
from musicrep_jax import progress
from musicrep_jax.data import audio as audio_lib


class Recordings:
  """Every readable audio file under `folder`, decoded once (the middle 30 s, mono, 16 kHz)."""

  def __init__(self, folder: str, crop_len: int, lead: bool = True):
    folder = os.path.expanduser(folder)
    if not os.path.isdir(folder):
      raise errors.ConfigError(f"config.unlabelled.folder={folder} is not a folder: give a folder of audio files")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if audio_lib.is_audio(f))
    self.tracks, _, skipped = audio_lib.decode_all(paths, min_seconds=crop_len / audio_lib.SAMPLE_RATE)
    if len(self.tracks) < 2:
      raise errors.ConfigError(f"config.unlabelled.folder={folder} has {len(self.tracks)} readable audio file(s): "
                               "the contrastive term needs at least 2 tracks")
    self.crop_len = crop_len
    progress.log(f"unlabelled: {len(self.tracks)} tracks from {folder}, skipped {len(skipped)}", lead)
    for path, why in sorted(skipped.items()):
      progress.log(f"  skipped {path}: {why}", lead)

  def crops(self, n: int, seed: int, step: int, process: int = 0) -> np.ndarray:
    """int16 [n, 2, crop_len]: two excerpts (random starts) of each of n tracks, distinct
    while the folder has n of them."""
    rng = np.random.default_rng([seed, step, process])
    which = rng.choice(len(self.tracks), n, replace=len(self.tracks) < n)
    out = np.empty((n, 2, self.crop_len), np.int16)
    for i, t in enumerate(which):
      track = self.tracks[t]
      for j, start in enumerate(rng.integers(0, len(track) - self.crop_len + 1, 2)):
        out[i, j] = track[start:start + self.crop_len]
    return out
