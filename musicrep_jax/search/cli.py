"""The command line of `python -m musicrep_jax.search` (its usage: the package's docstring)."""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from musicrep_jax import errors
from musicrep_jax.progress import printable
from musicrep_jax.search import approx as approx_lib
from musicrep_jax.search.building import build
from musicrep_jax.search.index import Index
from musicrep_jax.search.trained import IndexInterrupted, Model, SearchError

COMMANDS = ("index", "query", "tag", "bench")

flags.DEFINE_string("workdir", None, "A trained run's workdir.")
flags.DEFINE_string("audio", None, "index: a folder of audio; query / tag: one audio file.")
flags.DEFINE_string("out", None, "index: the index file (.npz) to write or update.")
flags.DEFINE_string("index", None, "query: the index file.")
flags.DEFINE_string("path", None, "query: an indexed file to use as the query (left out of the answer).")
flags.DEFINE_string("aspect", "all", "query: compare in this category's subspace (the model's categories, e.g. "
                    "genre, mood, instrument, era), or all.")
flags.DEFINE_integer("k", 10, "query: neighbours to return.")
flags.DEFINE_integer("top", 3, "tag: tags per category.")
flags.DEFINE_list("sizes", ["10000", "100000", "1000000"], "bench: collection sizes.")
flags.DEFINE_integer("dim", 128, "bench: embedding size.")
flags.DEFINE_enum("method", "auto", list(approx_lib.METHODS), "index / query: exact search, the approximate (faiss "
                  f"IVF) index, or auto: approximate from {approx_lib.APPROX_MIN:,} tracks.")
flags.DEFINE_integer("nprobe", 32, "query: cells of the approximate index scanned (more: better recall, slower).")
flags.DEFINE_list("nprobes", ["8", "32", "128"], "bench: nprobe values measured.")
flags.DEFINE_bool("json", False, "Print JSON.")
flags.DEFINE_bool("replace", False, "index: rewrite an index even when files it holds are not in --audio "
                  "(they are dropped from it).")
F = flags.FLAGS


def _require(**values) -> None:
  missing = [k for k, v in values.items() if not v]
  if missing:
    raise SearchError(f"this command needs {', '.join('--' + m for m in missing)}")


def _bench() -> None:
  try:
    sizes, nprobes = [int(n) for n in F.sizes], [int(p) for p in F.nprobes]
  except ValueError:
    raise SearchError(f"--sizes={','.join(F.sizes)} and --nprobes={','.join(F.nprobes)} take whole numbers") from None
  if min(sizes + nprobes) < 1:
    raise SearchError("--sizes and --nprobes take positive numbers")
  approx_lib.bench(sizes, F.dim, nprobes)


def _index() -> None:
  _require(workdir=F.workdir, audio=F.audio, out=F.out)
  index = build(Model.load(F.workdir), F.audio, F.out, replace=F.replace)
  print(f"{index.path}: {len(index.files)} files ({index.added} embedded now), skipped {len(index.skipped)}")
  if F.method == "approx" or (F.method == "auto" and len(index.files) >= approx_lib.APPROX_MIN):
    for aspect in index.aspects:
      index.searcher(aspect, "approx")
    print(f"approximate indexes of {', '.join(index.aspects)} written to {index.path}.ann/")
  for path, reason in sorted(index.skipped.items()):
    print(f"  skipped {printable(path)}: {printable(reason)}")


def _query() -> None:
  _require(index=F.index)
  if bool(F.audio) == bool(F.path):
    raise SearchError("give exactly one of --audio=FILE (embedded now) or --path=INDEXED_PATH")
  index = Index.load(F.index)
  index.mask(F.aspect)  # an unknown aspect is refused before a model loads
  if F.audio:
    model = Model.load(F.workdir or index.workdir)
    index.check_model(model)
    vec = model.embed_files([F.audio])[0]
  else:
    vec = index.vector(F.path)
  hits = index.query(vec, F.aspect, F.k, F.method, F.nprobe, exclude=F.path)  # not the query's own file
  if F.json:
    print(json.dumps([{"path": p, "similarity": s} for p, s in hits], indent=1))
    return
  note = "" if index.disentangled or F.aspect == "all" else " (model not disentangled: whole space)"
  method = type(index.searcher(F.aspect, F.method, F.nprobe)).__name__.lower()
  mine = f", {printable(F.path)} itself left out" if F.path else ""
  print(f"{len(hits)} most similar by {F.aspect}{note} ({method} search{mine}):")
  for p, s in hits:
    print(f"  {s:+.3f}  {printable(p)}")


def _tag() -> None:
  _require(workdir=F.workdir, audio=F.audio)
  model = Model.load(F.workdir)
  tags = model.tag(model.embed_files([F.audio])[0], top=F.top)
  if F.json:
    print(json.dumps({c: [{"tag": t, "score": s} for t, s in v] for c, v in tags.items()}, indent=1))
    return
  for cat, v in tags.items():
    print(f"{cat:<11} " + ", ".join(f"{t} {s:.2f}" for t, s in v))


def _cli(argv) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise SearchError(f"give one command: {', '.join(COMMANDS[:-1])} or {COMMANDS[-1]} (see --help)")
  for flag in ("k", "top", "nprobe", "dim"):
    if F[flag].value < 1:
      raise SearchError(f"--{flag}={F[flag].value} must be 1 or more")
  {"index": _index, "query": _query, "tag": _tag, "bench": _bench}[argv[1]]()


def main(argv) -> None:
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)  # Orbax and TFDS are chatty at INFO
  try:
    _cli(argv)
  except IndexInterrupted as e:
    errors.die(str(e), 130)
  except errors.UserError as e:
    if errors.debug():
      raise
    errors.die(f"error: {e}")
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def run() -> None:
  app.run(main)
