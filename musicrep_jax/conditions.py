"""Training conditions: where should metric learning beat classification?

One option of the config, `config.condition`, changes what the model learns from; the
training code is the same for every condition, loss and model:

- `open_set`: in each category with at least 2 tags the last max(1, n // 4) tags (in
  vocabulary order) are held out. They are removed from every training and validation
  label (the tracks stay, with their other tags: removing every track with a held-out
  tag would remove over half of the training set), masked out of every loss (a
  classifier's output for them gets no gradient), left out of the standard test figures
  (which are then the seen-tag figures) and measured by the `open_set` evaluator only.
  synth_music holds out genre latin, country; mood dark; instrument saxophone, synth;
  era 2010s.
- `label_fraction` f < 1: only the training tracks whose fingerprint u(track_id) is below
  f are trained on. The subset depends on the track id alone, so it is the same for every
  model and seed, and the 10% subset lies inside the 30% one.
- `drop_positive` p > 0: each positive training tag y of a track is dropped when
  u(track_id, y) < p (weak labels: a tag that applies is absent); the same draw for every
  model and seed. Validation and test labels are untouched.

u is a FarmHash fingerprint of the string (tf.strings.to_hash_bucket_fast), scaled to
[0, 1): stable across processes, machines and runs. `CONDITIONS` names the conditions of
`bench --condition`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


CONDITIONS = {
    "full": {},
    "open_set": {"open_set": True},
    "labels_10": {"label_fraction": 0.1},
    "labels_30": {"label_fraction": 0.3},
    "missing_30": {"drop_positive": 0.3},
}
DEFAULT = {"open_set": False, "label_fraction": 1.0, "drop_positive": 0.0}
_BUCKETS = 1 << 31


def of(config) -> dict:
  """The condition of a config (the default for configs written before conditions)."""
  return {**DEFAULT, **(config.get("condition") or {})}


def held_out(vocab: Mapping[str, Sequence[str]], condition: dict) -> np.ndarray:
  """[T] bool: the tags an open-set condition holds out (none otherwise)."""
  mask = []
  for c in vocab:
    n = len(vocab[c])
    k = max(1, n // 4) if condition["open_set"] and n >= 2 else 0
    mask += [False] * (n - k) + [True] * k
  return np.array(mask, bool)


def visible(labels: np.ndarray, held: np.ndarray) -> np.ndarray:
  """Labels without the held-out tags (what training, validation and the seen-tag test
  figures see)."""
  return np.where(held[None], False, np.asarray(labels, bool)) if held.any() else np.asarray(labels, bool)


def unit_hash(strings):
  """[...] tf.string -> [...] float32 in [0, 1): the fingerprint u of each string."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.cast(tf.strings.to_hash_bucket_fast(strings, _BUCKETS), tf.float64) / _BUCKETS


def labelled(condition: dict, track_ids):
  """[...] bool: is each training track (tf.string ids, any shape) in the labelled subset?"""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return unit_hash(tf.strings.join([track_ids, tf.fill(tf.shape(track_ids), "#labelled")])) < \
      condition["label_fraction"]


def keep_track(condition: dict):
  """tf predicate on a training example: is the track in the labelled subset?"""
  return lambda ex: labelled(condition, ex["track_id"])


def train_labels(condition: dict, held: np.ndarray, split: str):
  """fn(track_ids tf.string [...], labels float32 [..., T]) -> the labels the model learns
  from on `split` (held-out tags removed on train and validation, positives dropped on train)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  keep = tf.constant(~held, tf.float32)
  tags = tf.constant([f"#{t}" for t in range(len(held))])
  p = condition["drop_positive"] if split == "train" else 0.0

  def fn(track_ids, labels):
    labels = labels * keep
    if p > 0:
      pairs = tf.strings.join([tf.broadcast_to(track_ids[..., None], tf.shape(labels)),
                               tf.broadcast_to(tags, tf.shape(labels))])
      labels = labels * tf.cast(unit_hash(pairs) >= p, tf.float32)
    return labels
  return fn


def training_view(condition: dict, held: np.ndarray, track_ids, labels: np.ndarray):
  """(keep [N] bool, labels [N, T] bool): the training tracks as a run under `condition`
  saw them (for the tag prototypes that evaluation computes from training tracks)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  ids = tf.constant(list(track_ids), tf.string)
  keep = labelled(condition, ids).numpy() if condition["label_fraction"] < 1 else np.ones(len(track_ids), bool)
  seen = train_labels(condition, held, "train")(ids, tf.constant(np.asarray(labels, np.float32)))
  return keep, seen.numpy() > 0
