"""Fixed-shape batches of 3-s windows from in-memory tracks, for embedding: numpy only,
so that `search` embeds files without TensorFlow (input_pipeline.eval_windows makes the
same batches from a TFDS split)."""

from __future__ import annotations

import numpy as np


def array_windows(tracks, *, crop_len: int, batch_size: int):
  """The batches of `input_pipeline.eval_windows` from in-memory int16 tracks (a list of [samples])."""
  audio, track = [], []
  for i, x in enumerate(tracks):
    x = np.pad(x, (0, max(crop_len - len(x), 0)))
    n = len(x) // crop_len
    audio.append(x[: n * crop_len].reshape(n, crop_len))
    track.append(np.full(n, i))
  if not audio:
    return
  audio, track = np.concatenate(audio), np.concatenate(track)
  for start in range(0, len(track), batch_size):
    yield pad_batch({"audio": audio[start: start + batch_size], "track": track[start: start + batch_size]}, batch_size)


def pad_batch(b: dict, batch_size: int) -> dict:
  """Pads a last, short batch (track -1) so that every batch has one shape: one compiled
  eval step; adds "valid"."""
  n = len(b["track"])
  if n < batch_size:
    b = {"audio": np.pad(b["audio"], ((0, batch_size - n), (0, 0))),
         "track": np.pad(b["track"], (0, batch_size - n), constant_values=-1)}
  b["valid"] = b["track"] >= 0
  return b
