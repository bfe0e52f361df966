"""Use a trained model: embed a music collection, search it by aspect, tag tracks.

  python -m musicrep_jax.search index --workdir=RUN --audio=DIR --out=INDEX
  python -m musicrep_jax.search query --index=INDEX (--audio=FILE | --path=INDEXED_PATH) [--aspect=mood] [-k 10] [--json]
  python -m musicrep_jax.search tag --workdir=RUN --audio=FILE [--json]
  python -m musicrep_jax.search bench [--sizes=10000,100000,1000000] [--dim=128]

The same from Python:

  from musicrep_jax import search
  model = search.Model.load("runs/proxy_dis")
  index = search.Index.build(model, "~/Music", "music.npz")     # adds only new or changed files
  hits = index.query(index.vector("~/Music/a.mp3"), aspect="mood", k=10)
  tags = model.tag(model.embed_files(["b.flac"])[0])

A song's embedding is the mean over its non-overlapping 3-s windows. An aspect
(genre, mood, instrument, era) compares songs in that category's subspace; "all" in
the whole embedding. For a model trained without disentanglement every aspect is
the whole space (there are no subspaces), and the output says so.
"""

from __future__ import annotations

import functools
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import ml_collections
import numpy as np

from musicrep_jax import checkpointing
from musicrep_jax import run
from musicrep_jax import train
from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import features

ASPECTS = ("all",) + tuple(features.CATEGORIES)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


class SearchError(ValueError):
  """Bad input to search; the message says what to do."""



def aspect_mask(dims: np.ndarray, disentangled: bool, aspect: str) -> np.ndarray:
  """[D] bool: the embedding dimensions an aspect compares (all of them when the model
  has no subspaces); `dims` gives each dimension's category index."""
  if aspect not in ASPECTS:
    raise SearchError(f"--aspect={aspect!r} is unknown: choose one of {', '.join(ASPECTS)}")
  if aspect == "all" or not disentangled:
    return np.ones(len(dims), bool)
  return dims == features.CATEGORIES.index(aspect)


class Model:
  """A trained model of a workdir, usable without its dataset."""

  def __init__(self, setup: train.Setup, state, prototypes: np.ndarray | None, workdir: str):
    self.setup, self.state, self.prototypes, self.workdir = setup, state, prototypes, workdir
    self.config = setup.config
    self.tag_names = setup.tag_names
    self.tag_category = setup.tag_category
    self.dims = np.repeat(np.arange(len(features.CATEGORIES)), self.config.model.subspace_dims)
    self.disentangled = bool(self.config.loss.disentangled)

  @classmethod
  def load(cls, workdir: str) -> Model:
    workdir = os.path.abspath(os.path.expanduser(workdir))
    paths = {n: os.path.join(workdir, n) for n in ("config.json", "tags.json", "prototypes.npy")}
    for name in ("config.json", "tags.json"):
      if not os.path.exists(paths[name]):
        raise SearchError(f"{paths[name]} is missing: give the --workdir of a run trained (or evaluated with "
                          "--mode=eval) by this version of musicrep_jax")
    with open(paths["config.json"]) as f:
      config = ml_collections.ConfigDict(json.load(f))
    with open(paths["tags.json"]) as f:
      vocab = json.load(f)
    setup = train.Setup(config, None, vocab=vocab)
    state, _ = run.restore_for_eval(setup, workdir)
    protos = None
    if config.loss.name.startswith("triplet"):
      if not os.path.exists(paths["prototypes.npy"]):
        raise SearchError(f"{paths['prototypes.npy']} is missing: run `python -m musicrep_jax.main "
                          f"--config=... --workdir={workdir} --mode=eval` to write it")
      protos = np.load(paths["prototypes.npy"])
    return cls(setup, state, protos, workdir)

  def embed(self, tracks: list[np.ndarray]) -> np.ndarray:
    """int16 mono 16-kHz tracks -> [N, D] song embeddings (mean over 3-s windows)."""
    crop, batch = self.setup.crop_len, self.config.eval.batch_size
    windows, owner = [], []
    for i, x in enumerate(tracks):
      x = np.pad(x, (0, max(crop - len(x), 0)))
      n = len(x) // crop
      windows.append(x[: n * crop].reshape(n, crop))
      owner += [i] * n
    if not windows:
      return np.zeros((0, int(sum(self.config.model.subspace_dims))), np.float32)
    windows, owner = np.concatenate(windows), np.array(owner)
    out = []
    for start in range(0, len(windows), batch):  # fixed batch shape: one compilation
      chunk = windows[start: start + batch]
      padded = np.pad(chunk, ((0, batch - len(chunk)), (0, 0)))
      out.append(np.asarray(self.setup.embed_fn(self.state, padded))[: len(chunk)])
    emb = np.concatenate(out)
    sums = np.zeros((len(tracks), emb.shape[1]), np.float64)
    np.add.at(sums, owner, emb)
    return (sums / np.bincount(owner, minlength=len(tracks))[:, None]).astype(np.float32)

  def embed_files(self, paths: list[str]) -> np.ndarray:
    """[N, D] song embeddings of audio files; raises audio_lib.BadAudio for a bad file."""
    return self.embed([audio_lib.decode(p) for p in paths])

  def tag_scores(self, embeddings: np.ndarray) -> np.ndarray:
    """[N, T] tag scores: the sigmoid of the classifier / proxy output, or for metric
    learning models (triplet, Proxy-NCA) the cosine to the tag's prototype / proxy."""
    params = jax.device_get(self.state["params"])
    protos = None if self.prototypes is None else self.prototypes.T
    s = np.asarray(self.setup.objective.tag_scores(jnp.asarray(embeddings), params["tag_weights"],
                                                    params["tag_bias"], protos))
    return 1 / (1 + np.exp(-s)) if self.config.loss.name in ("proxy", "vanilla") else s

  def tag(self, embedding: np.ndarray, top: int = 3) -> dict[str, list[tuple[str, float]]]:
    """{category: [(tag, score), ...]}: the `top` tags of each category for one song."""
    scores = self.tag_scores(embedding[None])[0]
    out = {}
    for c, cat in enumerate(features.CATEGORIES):
      idx = np.flatnonzero(self.tag_category == c)
      best = idx[np.argsort(-scores[idx], kind="stable")[:top]]
      out[cat] = [(self.tag_names[i].split("/", 1)[1], float(scores[i])) for i in best]
    return out


@functools.partial(jax.jit, static_argnames="k")
def _top_k_cosine(block, query, k):
  block = block / jnp.maximum(jnp.linalg.norm(block, axis=-1, keepdims=True), 1e-12)
  return jax.lax.top_k(block @ (query / jnp.maximum(jnp.linalg.norm(query), 1e-12)), k)


def top_k(database, query, k: int, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
  """(indices, cosines) of the k rows of `database` ([N, D], numpy or on the device)
  most cosine-similar to `query`: exact, on the accelerator, in chunks of rows, so no
  more than `chunk` x D floats are processed at once (ties: lower index first)."""
  q = jnp.asarray(query, jnp.float32)
  best_i, best_s = [], []
  for start in range(0, len(database), chunk):
    block = jnp.asarray(database[start: start + chunk], jnp.float32)
    s, i = _top_k_cosine(block, q, min(k, block.shape[0]))
    best_s.append(np.asarray(s))
    best_i.append(np.asarray(i) + start)
  s, i = np.concatenate(best_s), np.concatenate(best_i)
  order = np.lexsort((i, -s))[:k]
  return i[order], s[order]


class Index:
  """Song embeddings of a collection with their files, in one .npz."""

  def __init__(self, path: str, files: list[str], stamps: np.ndarray, embeddings: np.ndarray, dims: np.ndarray,
               disentangled: bool, workdir: str, skipped: dict[str, str]):
    self.path, self.files, self.stamps, self.embeddings = path, files, stamps, embeddings
    self.dims, self.disentangled, self.workdir, self.skipped = dims, disentangled, workdir, skipped
    self.added = 0  # files embedded by the last build

  @classmethod
  def load(cls, path: str) -> Index:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
      raise SearchError(f"{path} does not exist: build it with `python -m musicrep_jax.search index`")
    with np.load(path) as z:
      return cls(path, list(z["files"]), z["stamps"], z["embeddings"], z["dims"], bool(z["disentangled"]),
                 str(z["workdir"]), json.loads(str(z["skipped"])))

  def save(self) -> None:
    tmp = self.path + ".tmp.npz"
    np.savez(tmp, files=np.array(self.files, dtype=str), stamps=self.stamps, embeddings=self.embeddings,
             dims=self.dims, disentangled=self.disentangled, workdir=self.workdir, skipped=json.dumps(self.skipped))
    os.replace(tmp, self.path)

  @classmethod
  def build(cls, model: Model, audio_dir: str, path: str, batch_files: int = 16, verbose: bool = True) -> Index:
    """Indexes every audio file under `audio_dir`; files already in the index at `path`
    with the same size and modification time are not decoded again."""
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    audio_dir = os.path.abspath(os.path.expanduser(audio_dir))
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(audio_dir):
      raise SearchError(f"--audio={audio_dir} is not a folder")
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(audio_dir) for f in fs
                   if f.lower().endswith(AUDIO_EXTENSIONS))
    stamps = np.array([[os.path.getsize(f), os.stat(f).st_mtime_ns] for f in files], np.int64).reshape(-1, 2)
    known = {}
    if os.path.exists(path):
      old = cls.load(path)
      if old.workdir != model.workdir:
        raise SearchError(f"{path} was built with the model in {old.workdir}: give another --out, or delete it")
      known = {f: (tuple(s), e) for f, s, e in zip(old.files, old.stamps, old.embeddings)}
    emb = np.zeros((len(files), len(model.dims)), np.float32)
    todo = []
    for i, (f, s) in enumerate(zip(files, stamps)):
      if f in known and known[f][0] == tuple(s):
        emb[i] = known[f][1]
      else:
        todo.append(i)
    skipped, ok = {}, np.ones(len(files), bool)
    bar = tqdm(total=len(todo), unit="file", desc="embedding", disable=not verbose or not todo)
    for start in range(0, len(todo), batch_files):
      decoded, rows = [], []
      for i in todo[start: start + batch_files]:
        try:
          decoded.append(audio_lib.decode(files[i]))
          rows.append(i)
        except audio_lib.BadAudio as e:
          skipped[files[i]], ok[i] = str(e), False
      if decoded:
        emb[rows] = model.embed(decoded)
      bar.update(len(todo[start: start + batch_files]))
    bar.close()
    index = cls(path, [f for f, k in zip(files, ok) if k], stamps[ok], emb[ok], model.dims, model.disentangled,
                model.workdir, skipped)
    index.save()
    index.added = len(todo) - len(skipped)
    return index

  def vector(self, path: str) -> np.ndarray:
    """The stored embedding of an indexed file."""
    path = os.path.abspath(os.path.expanduser(path))
    if path not in self.files:
      raise SearchError(f"{path} is not in {self.path}: give --audio=FILE to embed it, or re-index")
    return self.embeddings[self.files.index(path)]

  def query(self, embedding: np.ndarray, aspect: str = "all", k: int = 10) -> list[tuple[str, float]]:
    """The k indexed files most similar to `embedding` in the aspect's subspace."""
    m = aspect_mask(self.dims, self.disentangled, aspect)
    idx, sims = top_k(self.embeddings[:, m], embedding[m], k)
    return [(self.files[i], float(s)) for i, s in zip(idx, sims)]


def bench(sizes: list[int], dim: int, k: int = 10, queries: int = 20) -> None:
  """Exact search on random vectors: seconds to put N vectors on the device, and the
  median latency of one top-k query (after a warm-up query that compiles)."""
  import time  # pylint: disable=import-outside-toplevel
  print(f"exact top-{k} cosine search, {dim}-d random vectors, on {jax.devices()[0].device_kind}; "
        f"median of {queries} queries")
  print(f"{'vectors':>10} {'load s':>8} {'query ms':>9}")
  rng = np.random.default_rng(0)
  for n in sizes:
    db = rng.normal(size=(n, dim)).astype(np.float32)
    start = time.perf_counter()
    db = jax.block_until_ready(jnp.asarray(db))
    load = time.perf_counter() - start
    q = rng.normal(size=(queries + 1, dim)).astype(np.float32)
    times = []
    for j in range(queries + 1):
      start = time.perf_counter()
      top_k(db, q[j], k)
      times.append(time.perf_counter() - start)
    print(f"{n:>10} {load:>8.2f} {1000 * float(np.median(times[1:])):>9.1f}", flush=True)


def _cli(argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  f = flags.FLAGS
  if len(argv) != 2 or argv[1] not in ("index", "query", "tag", "bench"):
    raise SearchError("give one command: index, query, tag or bench (see --help)")
  command = argv[1]
  if command == "bench":
    bench([int(n) for n in f.sizes], f.dim)
    return
  if command == "index":
    _require(workdir=f.workdir, audio=f.audio, out=f.out)
    index = Index.build(Model.load(f.workdir), f.audio, f.out)
    print(f"{index.path}: {len(index.files)} files ({index.added} embedded now), skipped {len(index.skipped)}")
    for path, reason in sorted(index.skipped.items()):
      print(f"  skipped {path}: {reason}")
    return
  if command == "query":
    _require(index=f.index)
    if bool(f.audio) == bool(f.path):
      raise SearchError("give exactly one of --audio=FILE (embedded now) or --path=INDEXED_PATH")
    index = Index.load(f.index)
    vec = (Model.load(f.workdir or index.workdir).embed_files([f.audio])[0] if f.audio else index.vector(f.path))
    hits = index.query(vec, f.aspect, f.k)
    if f.json:
      print(json.dumps([{"path": p, "similarity": s} for p, s in hits], indent=1))
    else:
      note = "" if index.disentangled or f.aspect == "all" else " (model not disentangled: whole space)"
      print(f"{len(hits)} most similar by {f.aspect}{note}:")
      for p, s in hits:
        print(f"  {s:+.3f}  {p}")
    return
  _require(workdir=f.workdir, audio=f.audio)
  model = Model.load(f.workdir)
  tags = model.tag(model.embed_files([f.audio])[0], top=f.top)
  if f.json:
    print(json.dumps({c: [{"tag": t, "score": s} for t, s in v] for c, v in tags.items()}, indent=1))
  else:
    for cat, v in tags.items():
      print(f"{cat:<11} " + ", ".join(f"{t} {s:.2f}" for t, s in v))


def _require(**values):
  missing = [k for k, v in values.items() if not v]
  if missing:
    raise SearchError(f"this command needs {', '.join('--' + m for m in missing)}")


def main(argv):
  try:
    _cli(argv)
  except (SearchError, audio_lib.BadAudio, checkpointing.CheckpointError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top
  _flags.DEFINE_string("workdir", None, "A trained run's workdir.")
  _flags.DEFINE_string("audio", None, "index: a folder of audio; query / tag: one audio file.")
  _flags.DEFINE_string("out", None, "index: the index file (.npz) to write or update.")
  _flags.DEFINE_string("index", None, "query: the index file.")
  _flags.DEFINE_string("path", None, "query: an indexed file to use as the query.")
  _flags.DEFINE_enum("aspect", "all", list(ASPECTS), "query: compare in this category's subspace.")
  _flags.DEFINE_integer("k", 10, "query: neighbours to return.")
  _flags.DEFINE_integer("top", 3, "tag: tags per category.")
  _flags.DEFINE_list("sizes", ["10000", "100000", "1000000"], "bench: collection sizes.")
  _flags.DEFINE_integer("dim", 128, "bench: embedding size.")
  _flags.DEFINE_bool("json", False, "Print JSON.")
  app.run(main)
