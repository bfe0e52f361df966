"""The index file: song embeddings of a collection with their files, in one .npz.

Fields: files (resolved paths), stamps (size, mtime_ns per file), embeddings [N, D],
dims (each dimension's category index), categories (their names), disentangled, workdir,
skipped (JSON {path: reason}), version (32 hex digits, new on every save: it names the
approximate indexes built for this content), model_step and model_digest (the checkpoint
that embedded it). A save is atomic (a new file of our own, renamed over the old one): a
reader sees the old index or the new one, and a failed save leaves the old one as it was.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid

import numpy as np

from musicrep_jax.data import features
from musicrep_jax.search import approx as approx_lib
from musicrep_jax.search.trained import SearchError, aspect_mask, aspects


class Index:
  """Song embeddings of a collection with their files, in one .npz."""

  def __init__(self, path: str, files: list[str], stamps: np.ndarray, embeddings: np.ndarray, dims: np.ndarray,
               disentangled: bool, workdir: str, skipped: dict[str, str], version: str = "",
               model_step: int = -1, model_digest: str = "", categories=features.CATEGORIES):
    self.path, self.files, self.stamps, self.embeddings = path, files, stamps, embeddings
    self.dims, self.disentangled, self.workdir, self.skipped = dims, disentangled, workdir, skipped
    self.categories = tuple(categories)
    self.version = version
    self.model_step, self.model_digest = model_step, model_digest
    self.added = 0  # files embedded by the last build
    self.not_embedded = 0  # files of the last build that could not be decoded
    self._searchers = {}

  @property
  def aspects(self) -> tuple[str, ...]:
    return aspects(self.categories)

  @classmethod
  def load(cls, path: str) -> Index:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
      raise SearchError(f"{path} does not exist: build it with `python -m musicrep_jax.search index`")
    if os.path.isdir(path):
      raise SearchError(f"{path} is a folder: give the index file (.npz) that `search index --out` wrote")
    try:
      with np.load(path) as z:
        categories = [str(c) for c in z["categories"]] if "categories" in z.files else features.CATEGORIES
        index = cls(path, list(z["files"]), z["stamps"], z["embeddings"], z["dims"], bool(z["disentangled"]),
                    str(z["workdir"]), json.loads(str(z["skipped"])), str(z["version"]),
                    int(z["model_step"]), str(z["model_digest"]), categories)
    except Exception as e:  # pylint: disable=broad-except  # truncated zip, foreign .npz, missing field
      raise SearchError(f"{path} is not an index written by this version of musicrep_jax "
                        f"({type(e).__name__}: {str(e)[:100]}): rebuild it with `search index`") from e
    ok = (re.fullmatch(r"[0-9a-f]{32}", index.version) and len(index.files) == len(index.embeddings) == len(index.stamps)
          and index.embeddings.ndim == 2 and index.embeddings.shape[1] == len(index.dims)
          and (not len(index.dims) or 0 <= index.dims.min() <= index.dims.max() < len(index.categories)))
    if not ok:
      raise SearchError(f"{path} is inconsistent (its fields disagree or its version is malformed): rebuild it "
                        "with `search index`")
    return index

  def save(self) -> None:
    """Atomic: a new file of our own beside the index (exclusive create), renamed over it.
    A failed write (a full disk, a quota) removes the new file, leaves the old index as it
    was and says so."""
    version = uuid.uuid4().hex
    folder = os.path.dirname(self.path)
    try:
      fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
      raise SearchError(f"--out={self.path} cannot be written ({e.strerror}): give a writable place") from None
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, files=np.array(self.files, dtype=str), stamps=self.stamps, embeddings=self.embeddings,
                 dims=self.dims, categories=np.array(self.categories, dtype=str), disentangled=self.disentangled,
                 workdir=self.workdir, skipped=json.dumps(self.skipped), version=version,
                 model_step=self.model_step, model_digest=self.model_digest)
      os.replace(tmp, self.path)
    except OSError as e:
      os.remove(tmp)
      kept = "the index there is as it was" if os.path.exists(self.path) else "no index was written"
      raise SearchError(f"{self.path} could not be written ({e.strerror}): free some space, or give another --out; "
                        f"{kept}") from None
    self.version, self._searchers = version, {}

  def approx_path(self, aspect: str) -> str:
    """INDEX.ann/<aspect>-<version>.faiss: the version is checked at load (32 hex digits),
    so the path never leaves INDEX.ann/."""
    if aspect not in self.aspects or not re.fullmatch(r"[0-9a-f]{32}", self.version):
      raise SearchError(f"{self.path}: malformed aspect or version; rebuild the index")
    return os.path.join(self.path + ".ann", f"{aspect}-{self.version}.faiss")

  def check_model(self, model) -> None:
    """Refuses a model other than the one that embedded this index."""
    if model.digest != self.model_digest:
      raise SearchError(f"{self.path} was embedded by another model (step {self.model_step} of {self.workdir}); "
                        f"the model given is step {model.step} of {model.workdir}: re-index with it, or query "
                        "with the index's own model")

  def mask(self, aspect: str) -> np.ndarray:
    return aspect_mask(self.dims, self.disentangled, aspect, self.categories)

  def searcher(self, aspect: str = "all", method: str = "auto", nprobe: int = 32):
    """The exact or approximate searcher of an aspect's subspace. "auto" is approximate
    from APPROX_MIN tracks. An approximate index is built once per index version and kept
    beside the index file (INDEX.ann/), so later queries only load it."""
    if method not in approx_lib.METHODS:
      raise SearchError(f"--method={method!r} is unknown: choose one of {', '.join(approx_lib.METHODS)}")
    mask = self.mask(aspect)
    if method == "auto":
      method = "approx" if len(self.files) >= approx_lib.APPROX_MIN else "exact"
    if (aspect, method) not in self._searchers:
      if method == "exact":
        self._searchers[aspect, method] = approx_lib.Exact(self.embeddings[:, mask])
      else:
        self._searchers[aspect, method] = approx_lib.kept(self.approx_path(aspect), aspect, self.embeddings[:, mask])
    searcher = self._searchers[aspect, method]
    if isinstance(searcher, approx_lib.Approx):  # a query-time setting, not part of the stored index
      searcher.index.nprobe = nprobe
    return searcher

  @classmethod
  def build(cls, model, audio_dir: str, path: str, batch_files: int = 16, verbose: bool = True,
            replace: bool = False) -> Index:
    """Indexes every audio file under `audio_dir` (search/building.py: what is read and
    skipped, and how an existing index is updated)."""
    from musicrep_jax.search import building  # pylint: disable=import-outside-toplevel
    return building.build(model, audio_dir, path, batch_files, verbose, replace)

  def vector(self, path: str) -> np.ndarray:
    """The stored embedding of an indexed file."""
    path = os.path.abspath(os.path.expanduser(path))
    if path not in self.files:
      raise SearchError(f"{path} is not in {self.path}: give --audio=FILE to embed it, or re-index")
    return self.embeddings[self.files.index(path)]

  def query(self, embedding: np.ndarray, aspect: str = "all", k: int = 10, method: str = "auto",
            nprobe: int = 32, exclude: str | None = None) -> list[tuple[str, float]]:
    """The k indexed files most similar to `embedding` in the aspect's subspace; `exclude`:
    an indexed path left out of them (the query's own file, when it is indexed)."""
    if not self.files:
      raise SearchError(f"{self.path} holds no tracks: index a folder that has audio files")
    mask = self.mask(aspect)
    skip = None if exclude is None else os.path.abspath(os.path.expanduser(exclude))
    n = min(k + (skip in self.files), len(self.files))
    idx, sims = self.searcher(aspect, method, nprobe).search(embedding[mask][None], n)
    hits = [(self.files[i], float(s)) for i, s in zip(idx[0], sims[0]) if i >= 0 and self.files[i] != skip]
    return hits[:k]
