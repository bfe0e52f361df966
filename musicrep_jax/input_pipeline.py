"""tf.data pipelines over a prepared TFDS dataset (any builder of musicrep_jax.data).

Training: each host reads its own slice of the split (pieces chained in a seeded
order, then a shuffle buffer of tracks), takes K random
3-s excerpts per track (K=2 non-overlapping excerpts for the track regulariser) and
batches them; an epoch is one pass over the host's tracks. Every random choice is
seeded by (seed, epoch) so an epoch can be replayed exactly on resume. A host's share of
the training split up to TRAIN_CACHE_BYTES is read once per process and kept decoded in
memory; the batches are the same as streamed.
Evaluation: every track cut into deterministic non-overlapping windows.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf
import tensorflow_datasets as tfds

from musicrep_jax import windows as windows_lib

tf.config.set_visible_devices([], "GPU")  # the accelerators belong to JAX


def _host_split(split: str, process_index: int, process_count: int) -> str:
  return tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index] if process_count > 1 else split


def split_dataset(builder, split: str, in_memory: bool = False) -> tf.data.Dataset:
  """builder.as_dataset(split, shuffle_files=False), made once per builder and split in a
  process and reused (a tf.data dataset can be read any number of times): each call costs
  about 0.2 CPU-s on this project's 2-core machine and keeps about 7 MB of host memory
  for the life of the process, and evaluation reads the same splits again and again
  (`python -m musicrep_jax.tools.perf --memory=...` measures the memory). in_memory: the
  same examples, read to the end once and kept decoded for the life of the process (a
  tf.data cache completes only when read to its end, and an epoch reads only part of
  each piece)."""
  made = vars(builder).setdefault("_musicrep_jax_splits", {})
  if (split, in_memory) not in made:
    if in_memory:
      ds = split_dataset(builder, split).cache()
      for _ in ds:
        pass
    else:
      ds = builder.as_dataset(split=split, shuffle_files=False)
    made[split, in_memory] = ds
  return made[split, in_memory]


def random_crops(audio: tf.Tensor, crop_len: int, k: int, seed: tf.Tensor) -> tf.Tensor:
  """[k, crop_len] excerpts of a 1-D track: one uniform crop (k=1) or k non-overlapping
  crops at uniform offsets inside k equal sections, in random order (k>1)."""
  n = tf.shape(audio)[0]
  audio = tf.pad(audio, [[0, tf.maximum(k * crop_len - n, 0)]])
  section = tf.maximum(tf.shape(audio)[0] // k, crop_len)
  u = tf.random.stateless_uniform([k], seed, 0.0, 1.0)
  starts = tf.range(k) * section + tf.cast(u * tf.cast(section - crop_len + 1, tf.float32), tf.int32)
  starts = tf.minimum(starts, tf.shape(audio)[0] - crop_len)
  starts = tf.random.experimental.stateless_shuffle(starts, seed + 1)
  return tf.stack([audio[starts[i]: starts[i] + crop_len] for i in range(k)])


# A host's share of the training split up to this size is read once and kept decoded in
# memory (the default synth_music's is 826 MB): streaming re-parses about 1,500 tracks an
# epoch (1,024 crops and the shuffle buffer), 1.6 CPU-s of a default-preset epoch against
# 0.4 from memory, on this project's 2-core machine (docs/PERFORMANCE.md). Larger corpora
# stream.
TRAIN_CACHE_BYTES = 2 << 30


class TrackSource:
  """A host's share of a split, read as up to 16 pieces made once per process
  (split_dataset); each epoch chains them in an order seeded by (seed, epoch). in_memory:
  the pieces are read once and kept decoded, when the share fits in TRAIN_CACHE_BYTES
  (the same examples in the same order as streaming)."""

  def __init__(self, builder, split: str, process_index: int = 0, process_count: int = 1, in_memory: bool = False):
    n = builder.info.splits[split].num_examples // process_count
    pieces = max(1, min(16, n // 8))
    names = tfds.even_splits(split, n=pieces * process_count)[process_index * pieces:(process_index + 1) * pieces]
    self.sizes = np.array([builder.info.splits[name].num_examples for name in names])
    share = builder.info.splits[split].num_bytes / process_count  # a sliced split's num_bytes is 0
    self.pieces = [split_dataset(builder, name, in_memory and share <= TRAIN_CACHE_BYTES) for name in names]

  def epoch(self, seed: int, epoch: int) -> tf.data.Dataset:
    order = np.random.default_rng([seed, epoch]).permutation(len(self.pieces))
    choice = tf.data.Dataset.from_tensor_slices(np.repeat(order, self.sizes[order]).astype(np.int64))
    return tf.data.Dataset.choose_from_datasets(self.pieces, choice)


def train_dataset(source: TrackSource, *, batch_size: int, crop_len: int, crops: int, seed: int, epoch: int,
                  shuffle_buffer: int, keep=None, labels_fn=None, repeat: bool = False) -> tf.data.Dataset:
  """One epoch of {"audio": int16 [B, K, crop_len], "labels": float32 [B, T]} host batches.

  keep: a predicate on examples (the tracks to train on); labels_fn(track_id, labels):
  the labels the model learns from (conditions.py). repeat: passes over the tracks without
  end (an epoch of more steps than the tracks fill), each pass with new excerpts."""
  ds = source.epoch(seed, epoch)
  if keep is not None:
    ds = ds.filter(keep)
  ds = ds.shuffle(shuffle_buffer, seed=seed * 7919 + epoch, reshuffle_each_iteration=False)
  ds = (ds.repeat() if repeat else ds).enumerate()

  def crop(i, ex):
    s = tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + epoch, i])
    labels = tf.cast(ex["tags"], tf.float32)
    return {"audio": random_crops(ex["audio"], crop_len, crops, tf.cast(s, tf.int32)),
            "labels": labels if labels_fn is None else labels_fn(ex["track_id"], labels)}

  ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size, drop_remainder=True).prefetch(2)


META_KEYS = ("tags", "track_id", "triplet")  # the per-track fields evaluation reads


def eval_windows(builder, split: str, *, crop_len: int, batch_size: int, max_windows: int = 0,
                 max_tracks: int = 0, process_index: int = 0, process_count: int = 1, meta: dict | None = None):
  """Yields numpy batches {"audio": [B, crop_len], "track": [B] int, "valid": [B] bool}
  of the non-overlapping windows of every track (the last batch padded), and returns
  nothing; track indices count the tracks of the split in order. meta: a dict that,
  once every batch has been read, holds the tracks' labels, ids and triplet fields, in
  that order (see metadata), from the same read of the split."""
  ds = split_dataset(builder, _host_split(split, process_index, process_count))
  if max_tracks:
    ds = ds.take(max_tracks)
  ds = ds.enumerate()

  def windows(i, ex):
    audio = ex["audio"]
    n = tf.maximum(tf.shape(audio)[0] // crop_len, 1)
    if max_windows:
      n = tf.minimum(n, max_windows)
    audio = tf.pad(audio, [[0, tf.maximum(crop_len - tf.shape(audio)[0], 0)]])
    w = tf.reshape(audio[: n * crop_len], [n, crop_len])
    out = {"audio": w, "track": tf.fill([n], i)}
    if meta is not None:  # each track's fields ride on its windows; its first one keeps them
      out["first"] = tf.range(n) == 0
      out.update({k: tf.repeat(ex[k][None], n, 0) for k in META_KEYS})
    return tf.data.Dataset.from_tensor_slices(out)

  ds = ds.flat_map(windows).batch(batch_size).prefetch(2)
  rows = {k: [] for k in META_KEYS}
  for b in tfds.as_numpy(ds):
    if meta is not None:
      first = b.pop("first")
      for k in META_KEYS:
        rows[k].extend(b.pop(k)[first])
    yield windows_lib.pad_batch(b, batch_size)
  if meta is not None:
    meta.update(metadata(rows))


def metadata(rows: dict) -> dict:
  """Per-track labels (float32 [N, T]), ids and triplet fields, from lists of the
  tracks' META_KEYS values in order."""
  return {"labels": np.stack(rows["tags"]).astype(np.float32),
          "track_id": [t.decode() for t in rows["track_id"]],
          "triplet": np.stack(rows["triplet"])}
