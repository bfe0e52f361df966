"""The feature schema shared by every dataset builder of musicrep_jax.

All builders store mono int16 audio at SAMPLE_RATE, the tags of each track as a
multi-hot vector over the dataset's vocabulary (its categories' tags, category by
category: genre, mood, instrument, era for synth_music; genre, instrument, moodtheme
for MTG-Jamendo), each tag's category index, and the tags of each category as a
ClassLabel sequence, so the vocabulary travels with the data and
`tfds.builder_from_directory` needs no builder code. The order of the categories is in
the dataset's metadata (`categories`); a dataset prepared without it (synth_music) has
the order of CATEGORIES.

A vocabulary is a dict {category: [tag, ...]} in that order: every function here takes
the categories from it, so nothing assumes four.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # TensorFlow is imported where a FeaturesDict is made: search runs without it
  import tensorflow_datasets as tfds

SAMPLE_RATE = 16000
CATEGORIES = ("genre", "mood", "instrument", "era")  # synth_music's and the paper's


def check_category_name(name: str, where: str) -> None:
  """A category becomes a feature, a subspace, an aspect and a column: a short lowercase
  word (letters, digits, _), not "all" (the whole embedding's aspect)."""
  import re  # pylint: disable=import-outside-toplevel
  if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name) or name in ("all", "audio", "tags", "track_id",
                                                                  "tag_category", "triplet", "factors"):
    raise ValueError(f"{where}: the category name {name!r} must be a lowercase word (letters, digits, _) other "
                     "than all, audio, tags, track_id, tag_category, triplet and factors")
NO_TRIPLET = (-1, -1, -1)


def features_dict(vocab: Mapping[str, Sequence[str]], factor_names: Sequence[str] = ()) -> tfds.features.FeaturesDict:
  """Schema for a vocabulary {category: tag names} and optional generative factors."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel,redefined-outer-name
  n_tags = sum(len(v) for v in vocab.values())
  feats = {
      "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES),
      "track_id": tfds.features.Text(),
      "tags": tfds.features.Tensor(shape=(n_tags,), dtype=np.bool_),
      "tag_category": tfds.features.Tensor(shape=(n_tags,), dtype=np.int32),
      # (triplet id, role 0/1/2 = anchor/positive/negative, category index) or -1s.
      "triplet": tfds.features.Tensor(shape=(3,), dtype=np.int32),
  }
  for c in vocab:
    feats[c] = tfds.features.Sequence(tfds.features.ClassLabel(names=list(vocab[c])))
  if factor_names:
    feats["factors"] = {n: np.float32 for n in factor_names}
  return tfds.features.FeaturesDict(feats)


def tag_names(vocab: Mapping[str, Sequence[str]]) -> list[str]:
  return [f"{c}/{t}" for c in vocab for t in vocab[c]]


def tag_categories(vocab: Mapping[str, Sequence[str]]) -> np.ndarray:
  return np.array([i for i, c in enumerate(vocab) for _ in vocab[c]], np.int32)


def encode_tags(vocab: Mapping[str, Sequence[str]], tags: Mapping[str, Sequence[str]]) -> dict:
  """The tag fields of one example from {category: [tag, ...]}."""
  multi_hot = np.zeros(sum(len(v) for v in vocab.values()), bool)
  offset = 0
  out = {}
  for c in vocab:
    idx = [list(vocab[c]).index(t) for t in tags.get(c, ())]
    multi_hot[[offset + i for i in idx]] = True
    out[c] = sorted(idx)
    offset += len(vocab[c])
  out["tags"] = multi_hot
  out["tag_category"] = tag_categories(vocab)
  return out


def metadata(vocab: Mapping[str, Sequence[str]]):
  """The DatasetInfo metadata that records the order of the vocabulary's categories."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel,redefined-outer-name
  return tfds.core.MetadataDict(categories=list(vocab))


def vocab_from_info(info: tfds.core.DatasetInfo) -> dict[str, list[str]]:
  """{category: tag names} of a prepared dataset, its categories in their order."""
  order = (info.metadata or {}).get("categories") or [c for c in CATEGORIES if c in info.features]
  return {c: list(info.features[c].feature.names) for c in order}
