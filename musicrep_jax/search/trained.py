"""A trained model of a workdir, usable without its dataset or the training loop, and
the aspects (the vocabulary's categories) that search compares songs by."""

from __future__ import annotations

import hashlib
import os

import jax
import numpy as np

from musicrep_jax import errors
from musicrep_jax import evaluate
from musicrep_jax import model as model_lib
from musicrep_jax import windows
from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import features

ASPECTS = ("all",) + tuple(features.CATEGORIES)  # those of the embedded dataset's models


class SearchError(errors.UserError):
  """Bad input to search; the message says what to do."""


class IndexInterrupted(errors.UserError):
  """Ctrl-C during `index`: what was embedded is saved."""


def aspects(categories) -> tuple[str, ...]:
  """The aspects of a model whose vocabulary has these categories: "all" and each one."""
  return ("all",) + tuple(categories)


def aspect_mask(dims: np.ndarray, disentangled: bool, aspect: str, categories=features.CATEGORIES) -> np.ndarray:
  """[D] bool: the embedding dimensions an aspect compares (all of them when the model
  has no subspaces); `dims` gives each dimension's index in `categories`."""
  if aspect not in aspects(categories):
    raise SearchError(f"--aspect={aspect!r} is unknown for this model: choose one of {', '.join(aspects(categories))}")
  if aspect == "all" or not disentangled:
    return np.ones(len(dims), bool)
  return dims == list(categories).index(aspect)


def model_digest(state) -> str:
  """A digest of the weights and batch statistics: what an index records, so that two
  models are never mixed in one index or queried against each other."""
  h = hashlib.sha1()
  for leaf in jax.tree_util.tree_leaves(jax.device_get({"p": state["params"], "b": state["batch_stats"]})):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


class Model:
  """A trained model of a workdir, usable without its dataset or the training loop."""

  def __init__(self, model: model_lib.Model, state, prototypes: np.ndarray | None, workdir: str):
    self.setup, self.state, self.prototypes, self.workdir = model, state, prototypes, workdir
    self.step = int(state["step"])
    self.digest = model_digest(state)
    self.config = model.config
    self.tag_names = model.tag_names
    self.tag_category = model.tag_category
    self.categories = tuple(model.vocab)
    self.dims = model.dim_category
    self.disentangled = bool(self.config.loss.disentangled)

  @classmethod
  def load(cls, workdir: str) -> Model:
    workdir = os.path.abspath(os.path.expanduser(workdir))
    model, state = model_lib.load(workdir)
    protos = None
    if model.loss_spec.needs_prototypes:
      path = os.path.join(workdir, "prototypes.npy")
      if not os.path.exists(path):
        raise SearchError(f"{path} is missing: run `python -m musicrep_jax.main "
                          f"--config=... --workdir={workdir} --mode=eval` to write it")
      protos = np.load(path).T  # [T, D]
    return cls(model, state, protos, workdir)

  def embed(self, tracks: list[np.ndarray]) -> np.ndarray:
    """int16 mono 16-kHz tracks -> [N, D] song embeddings (mean over 3-s windows)."""
    return evaluate.song_embeddings(self.setup, self.state, windows.array_windows(
        tracks, crop_len=self.setup.crop_len, batch_size=self.config.eval.batch_size))[0]

  def embed_files(self, paths: list[str]) -> np.ndarray:
    """[N, D] song embeddings of audio files; raises audio_lib.BadAudio, naming the file, for a
    bad one."""
    tracks = []
    for p in paths:
      try:
        tracks.append(audio_lib.decode(p))
      except audio_lib.BadAudio as e:
        raise audio_lib.BadAudio(f"{p}: {e}") from e
    return self.embed(tracks)

  def tag_scores(self, embeddings: np.ndarray) -> np.ndarray:
    """[N, T] tag scores: the sigmoid of a classifier / proxy output, or the cosine to the
    tag's prototype or proxy for metric-learning losses (objective.LOSSES says which)."""
    return self.setup.tag_scores(self.state, embeddings, self.prototypes, probabilities=True)

  def tag(self, embedding: np.ndarray, top: int = 3) -> dict[str, list[tuple[str, float]]]:
    """{category: [(tag, score), ...]}: the `top` tags of each category for one song."""
    scores = self.tag_scores(embedding[None])[0]
    out = {}
    for c, cat in enumerate(self.categories):
      idx = np.flatnonzero(self.tag_category == c)
      best = idx[np.argsort(-scores[idx], kind="stable")[:top]]
      out[cat] = [(self.tag_names[i].split("/", 1)[1], float(scores[i])) for i in best]
    return out
