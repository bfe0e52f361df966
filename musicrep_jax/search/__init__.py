"""Use a trained model: embed a music collection, search it by aspect, tag tracks.

  python -m musicrep_jax.search index --workdir=RUN --audio=DIR --out=INDEX [--method=auto|exact|approx] [--replace]
  python -m musicrep_jax.search query --index=INDEX (--audio=FILE | --path=INDEXED_PATH) [--aspect=mood] [-k 10] [--method=auto|exact|approx] [--json]
  python -m musicrep_jax.search tag --workdir=RUN --audio=FILE [--json]
  python -m musicrep_jax.search bench [--sizes=10000,100000,1000000] [--dim=128] [--nprobes=8,32,128]

The same from Python:

  from musicrep_jax import search
  model = search.Model.load("runs/proxy_dis")
  index = search.Index.build(model, "~/Music", "music.npz")     # adds only new or changed files
  hits = index.query(index.vector("~/Music/a.mp3"), aspect="mood", k=10, exclude="~/Music/a.mp3")
  tags = model.tag(model.embed_files(["b.flac"])[0])

A song's embedding is the mean over its non-overlapping 3-s windows. An aspect
(a category of the model's vocabulary, e.g. genre or mood) compares songs in that
category's subspace; "all" in the whole embedding. For a model trained without
disentanglement every aspect is the whole space (there are no subspaces), and the
output says so.

The package, one role per module (each guarantee of docs/RELIABILITY.md lives in one):

  trained.py   a trained model without its dataset: embed, tag; aspects and their masks
  index.py     the index file: its format, atomic save, load checks, queries
  building.py  building an index from a folder: what is read, skipped and why; Ctrl-C
  approx.py    exact and approximate (faiss) searchers, the kept approximate indexes, bench
  cli.py       the command line

Names are imported on first use, so `import musicrep_jax.search` costs nothing and a
command sets its environment before JAX is imported.
"""

from __future__ import annotations

import importlib

_WHERE = {"SearchError": "trained", "IndexInterrupted": "trained", "ASPECTS": "trained", "aspect_mask": "trained",
          "aspects": "trained", "model_digest": "trained", "Model": "trained", "Index": "index",
          "audio_tree": "building", "Exact": "approx", "Approx": "approx", "top_k": "approx", "bench": "approx",
          "APPROX_MIN": "approx", "METHODS": "approx"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
  if name not in _WHERE:
    raise AttributeError(f"module 'musicrep_jax.search' has no attribute {name!r}")
  return getattr(importlib.import_module(f"musicrep_jax.search.{_WHERE[name]}"), name)


def __dir__():
  return __all__
