"""Use a trained model: embed a music collection, search it by aspect, tag tracks.

  python -m musicrep_jax.search index --workdir=RUN --audio=DIR --out=INDEX [--method=auto|exact|approx]
  python -m musicrep_jax.search query --index=INDEX (--audio=FILE | --path=INDEXED_PATH) [--aspect=mood] [-k 10] [--method=auto|exact|approx] [--json]
  python -m musicrep_jax.search tag --workdir=RUN --audio=FILE [--json]
  python -m musicrep_jax.search bench [--sizes=10000,100000,1000000] [--dim=128] [--nprobes=8,32,128]

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

import json
import os
import re
import signal
import stat
import sys

import musicrep_jax

if __name__ == "__main__":
  musicrep_jax.cli_environment()

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from musicrep_jax import errors
from musicrep_jax import evaluate
from musicrep_jax import losses
from musicrep_jax import metrics
from musicrep_jax.progress import printable
from musicrep_jax import model as model_lib
from musicrep_jax import windows
from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import features

ASPECTS = ("all",) + tuple(features.CATEGORIES)


class SearchError(errors.UserError):
  """Bad input to search; the message says what to do."""


class IndexInterrupted(errors.UserError):
  """Ctrl-C during `index`: what was embedded is saved."""


def aspect_mask(dims: np.ndarray, disentangled: bool, aspect: str) -> np.ndarray:
  """[D] bool: the embedding dimensions an aspect compares (all of them when the model
  has no subspaces); `dims` gives each dimension's category index."""
  if aspect not in ASPECTS:
    raise SearchError(f"--aspect={aspect!r} is unknown: choose one of {', '.join(ASPECTS)}")
  if aspect == "all" or not disentangled:
    return np.ones(len(dims), bool)
  return dims == features.CATEGORIES.index(aspect)


def model_digest(state) -> str:
  """A digest of the weights and batch statistics: what an index records, so that two
  models are never mixed in one index or queried against each other."""
  import hashlib  # pylint: disable=import-outside-toplevel
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
    """[N, D] song embeddings of audio files; raises audio_lib.BadAudio for a bad file."""
    return self.embed([audio_lib.decode(p) for p in paths])

  def tag_scores(self, embeddings: np.ndarray) -> np.ndarray:
    """[N, T] tag scores: the sigmoid of a classifier / proxy output, or the cosine to the
    tag's prototype or proxy for metric-learning losses (objective.LOSSES says which)."""
    return self.setup.tag_scores(self.state, embeddings, self.prototypes, probabilities=True)

  def tag(self, embedding: np.ndarray, top: int = 3) -> dict[str, list[tuple[str, float]]]:
    """{category: [(tag, score), ...]}: the `top` tags of each category for one song."""
    scores = self.tag_scores(embedding[None])[0]
    out = {}
    for c, cat in enumerate(features.CATEGORIES):
      idx = np.flatnonzero(self.tag_category == c)
      best = idx[np.argsort(-scores[idx], kind="stable")[:top]]
      out[cat] = [(self.tag_names[i].split("/", 1)[1], float(scores[i])) for i in best]
    return out


APPROX_MIN = 1_000_000  # "auto" search is approximate from this many tracks (exact: ~50 ms/query at 1M on 2 CPU cores)
METHODS = ("auto", "exact", "approx")


Exact = metrics.TopK  # by cosine


class Approx:
  """Approximate cosine search with faiss: an inverted file (IVF-Flat) of 4 sqrt(N)
  k-means cells over unit vectors; a query scans the `nprobe` nearest cells. Chosen over
  HNSW (faiss, usearch) by `search bench` / docs: it builds 6-15x faster at equal recall
  on clustered vectors."""

  def __init__(self, index, nprobe: int = 32):
    self.index = index
    self.index.nprobe = nprobe

  @staticmethod
  def _unit(x) -> np.ndarray:
    return np.ascontiguousarray(losses.l2_normalize(np.asarray(x, np.float32)))

  @classmethod
  def build(cls, vectors: np.ndarray, nprobe: int = 32, seed: int = 0) -> Approx:
    import faiss  # pylint: disable=import-outside-toplevel
    x = cls._unit(vectors)
    cells = max(1, min(int(4 * len(x) ** 0.5), len(x) // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(seed).permutation(len(x))[: 40 * cells]
    index.train(x[np.sort(sample)])
    index.add(x)
    return cls(index, nprobe)

  @classmethod
  def load(cls, path: str, nprobe: int = 32) -> Approx:
    import faiss  # pylint: disable=import-outside-toplevel
    return cls(faiss.read_index(path), nprobe)

  def save(self, path: str) -> None:
    """Writes a new file of our own (exclusive create in the same folder, never through a
    link), then renames it over `path`."""
    import faiss  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".faiss.tmp", dir=os.path.dirname(path))
    os.close(fd)
    try:
      faiss.write_index(self.index, tmp)
      os.replace(tmp, path)
    except BaseException:
      os.remove(tmp)
      raise

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims, idx = self.index.search(self._unit(np.atleast_2d(queries)), k)
    return idx, sims


def top_k(database, query, k: int, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
  """(indices, cosines) of the k rows of `database` ([N, D]) most cosine-similar to
  `query` ([D]): exact, on the accelerator, `chunk` rows at a time."""
  i, s = Exact(database, chunk).search(np.asarray(query)[None], k)
  return i[0], s[0]


def audio_tree(root: str) -> tuple[list[str], dict[str, str]]:
  """(files, {path: reason}) under `root`, sorted: every file whose real path lies inside
  `root`; folders that cannot be read and links that lead out of `root` are left out and
  named, never passed over in silence (os.walk alone skips both without a word)."""
  real_root = os.path.realpath(root)
  skipped: dict[str, str] = {}

  def unreadable(e: OSError) -> None:
    skipped[e.filename] = f"folder cannot be read ({e.strerror})"

  found = []
  for folder, dirs, names in os.walk(root, onerror=unreadable):
    for d in dirs:
      if os.path.islink(os.path.join(folder, d)):  # os.walk does not enter it: say so
        skipped[os.path.join(folder, d)] = "a link to a folder (not followed: it may lead outside the folder)"
    for n in names:
      full = os.path.join(folder, n)
      real = os.path.realpath(full)
      if os.path.commonpath([real, real_root]) != real_root:
        skipped[full] = f"a link to {real}, outside {root}"
      else:
        found.append(full)
  return sorted(found), skipped


class Index:
  """Song embeddings of a collection with their files, in one .npz."""

  def __init__(self, path: str, files: list[str], stamps: np.ndarray, embeddings: np.ndarray, dims: np.ndarray,
               disentangled: bool, workdir: str, skipped: dict[str, str], version: str = "",
               model_step: int = -1, model_digest: str = ""):  # pylint: disable=redefined-outer-name
    self.path, self.files, self.stamps, self.embeddings = path, files, stamps, embeddings
    self.dims, self.disentangled, self.workdir, self.skipped = dims, disentangled, workdir, skipped
    self.version = version  # changes on every save; names the approximate indexes built for it
    self.model_step, self.model_digest = model_step, model_digest  # the checkpoint that embedded it
    self.added = 0  # files embedded by the last build
    self._searchers = {}

  @classmethod
  def load(cls, path: str) -> Index:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
      raise SearchError(f"{path} does not exist: build it with `python -m musicrep_jax.search index`")
    if os.path.isdir(path):
      raise SearchError(f"{path} is a folder: give the index file (.npz) that `search index --out` wrote")
    try:
      with np.load(path) as z:
        index = cls(path, list(z["files"]), z["stamps"], z["embeddings"], z["dims"], bool(z["disentangled"]),
                    str(z["workdir"]), json.loads(str(z["skipped"])), str(z["version"]),
                    int(z["model_step"]), str(z["model_digest"]))
    except Exception as e:  # pylint: disable=broad-except  # truncated zip, foreign .npz, missing field
      raise SearchError(f"{path} is not an index written by this version of musicrep_jax "
                        f"({type(e).__name__}: {str(e)[:100]}): rebuild it with `search index`") from e
    ok = (re.fullmatch(r"[0-9a-f]{32}", index.version) and len(index.files) == len(index.embeddings) == len(index.stamps)
          and index.embeddings.ndim == 2 and index.embeddings.shape[1] == len(index.dims))
    if not ok:
      raise SearchError(f"{path} is inconsistent (its fields disagree or its version is malformed): rebuild it "
                        "with `search index`")
    return index

  def save(self) -> None:
    import uuid  # pylint: disable=import-outside-toplevel
    self.version, self._searchers = uuid.uuid4().hex, {}
    tmp = self.path + ".tmp.npz"
    np.savez(tmp, files=np.array(self.files, dtype=str), stamps=self.stamps, embeddings=self.embeddings,
             dims=self.dims, disentangled=self.disentangled, workdir=self.workdir, skipped=json.dumps(self.skipped),
             version=self.version, model_step=self.model_step, model_digest=self.model_digest)
    os.replace(tmp, self.path)  # atomic: a reader sees the old index or the new one

  def approx_path(self, aspect: str) -> str:
    """INDEX.ann/<aspect>-<version>.faiss: the version is checked at load (32 hex digits),
    so the path never leaves INDEX.ann/."""
    if aspect not in ASPECTS or not re.fullmatch(r"[0-9a-f]{32}", self.version):
      raise SearchError(f"{self.path}: malformed aspect or version; rebuild the index")
    return os.path.join(self.path + ".ann", f"{aspect}-{self.version}.faiss")

  def check_model(self, model: Model) -> None:
    """Refuses a model other than the one that embedded this index."""
    if model.digest != self.model_digest:
      raise SearchError(f"{self.path} was embedded by another model (step {self.model_step} of {self.workdir}); "
                        f"the model given is step {model.step} of {model.workdir}: re-index with it, or query "
                        "with the index's own model")

  def searcher(self, aspect: str = "all", method: str = "auto", nprobe: int = 32) -> Exact | Approx:
    """The exact or approximate searcher of an aspect's subspace. "auto" is approximate
    from APPROX_MIN tracks. An approximate index is built once per index version and kept
    beside the index file (INDEX.ann/), so later queries only load it."""
    if method not in METHODS:
      raise SearchError(f"--method={method!r} is unknown: choose one of {', '.join(METHODS)}")
    mask = aspect_mask(self.dims, self.disentangled, aspect)
    if method == "auto":
      method = "approx" if len(self.files) >= APPROX_MIN else "exact"
    if (aspect, method) not in self._searchers:
      if method == "exact":
        self._searchers[aspect, method] = Exact(self.embeddings[:, mask])
      else:
        self._searchers[aspect, method] = self._approx(aspect, mask)
    searcher = self._searchers[aspect, method]
    if isinstance(searcher, Approx):  # a query-time setting, not part of the stored index
      searcher.index.nprobe = nprobe
    return searcher

  def _approx(self, aspect: str, mask) -> Approx:
    """The aspect's approximate index from INDEX.ann/ (ours: rebuilt when it does not
    load), or built and kept there. INDEX.ann must be a real folder: through a link or
    over a file nothing is read, written or deleted. Only our own files of older versions
    (<aspect>-<32 hex digits>.faiss, regular files) are deleted. An index folder that
    cannot be written leaves the index built for this process only, with a note."""
    path = self.approx_path(aspect)
    folder = os.path.dirname(path)
    if os.path.islink(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
      raise SearchError(f"{folder} is {'a link' if os.path.islink(folder) else 'not a folder'}: it must be the "
                        "index's own folder of approximate indexes; move it away (nothing was changed)")
    if os.path.isfile(path) and not os.path.islink(path):
      try:
        loaded = Approx.load(path)
        if loaded.index.d == int(np.sum(mask)) and loaded.index.ntotal == len(self.files):
          return loaded
      except RuntimeError:  # truncated or corrupt
        pass
      print(f"{path} is not this index's approximate index (corrupt or another one): building it again",
            file=sys.stderr, flush=True)
    approx = Approx.build(self.embeddings[:, mask])
    try:
      os.makedirs(folder, exist_ok=True)
      for old in os.listdir(folder):  # drop those of older versions
        full = os.path.join(folder, old)
        if re.fullmatch(rf"{aspect}-[0-9a-f]{{32}}\.faiss", old) and os.path.isfile(full) and not os.path.islink(full):
          os.remove(full)
      approx.save(path)
    except OSError as e:
      print(f"note: the approximate index could not be kept in {folder} ({e.strerror}): built for this query only",
            file=sys.stderr, flush=True)
    return approx

  @classmethod
  def build(cls, model: Model, audio_dir: str, path: str, batch_files: int = 16, verbose: bool = True,
            replace: bool = False) -> Index:
    """Indexes every audio file under `audio_dir`; files already in the index at `path`,
    embedded by the same model, with the same size and modification time are not decoded
    again. Every check that can refuse comes before any decoding; INDEX.lock keeps a
    second run off the same index; Ctrl-C keeps what was embedded (rerun to continue).
    A rebuild that would drop files the index holds (another or an unmounted folder, files
    deleted or moved) is refused unless `replace`. Nothing outside `audio_dir` is read:
    links that lead out of it, and folders that cannot be read, are skipped and listed."""
    audio_dir = os.path.abspath(os.path.expanduser(audio_dir))
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(audio_dir):
      raise SearchError(f"--audio={audio_dir} is not a folder")
    if os.path.isdir(path):
      raise SearchError(f"--out={path} is a folder: give a file name, e.g. {path}/music.npz")
    if not os.path.isdir(os.path.dirname(path)):
      raise SearchError(f"--out={path}: the folder {os.path.dirname(path)} does not exist: create it first")
    old = cls.load(path) if os.path.exists(path) else None
    if old is not None and old.workdir != model.workdir:
      raise SearchError(f"{path} was built with the model in {old.workdir}: give another --out, or delete it")
    lock = path + ".lock"
    try:
      fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
      raise SearchError(f"another `search index` is writing {path} ({lock} exists): wait for it, or delete "
                        f"{lock} if no other run is") from None
    except OSError as e:
      raise SearchError(f"--out={path} cannot be written ({e.strerror}): give a writable place") from None
    os.close(fd)
    try:
      return cls._build(model, audio_dir, path, old, batch_files, verbose, replace)
    finally:
      os.remove(lock)

  @classmethod
  def _build(cls, model, audio_dir, path, old, batch_files, verbose, replace) -> Index:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    found, skipped = audio_tree(audio_dir)
    files, stamps = [], []
    for f in found:
      if not audio_lib.is_audio(f):
        skipped[f] = audio_lib.unsupported_reason(f)
        continue
      try:
        st = os.stat(f)
      except OSError as e:  # a dangling link, a file removed meanwhile
        skipped[f] = f"cannot be read ({e.strerror})"
        continue
      if not stat.S_ISREG(st.st_mode):  # opening a named pipe would wait for a writer forever
        skipped[f] = "not a regular file (a named pipe, socket or device)"
        continue
      files.append(f)
      stamps.append((st.st_size, st.st_mtime_ns))
    stamps = np.array(stamps, np.int64).reshape(-1, 2)
    dropped = sorted(set(old.files) - set(files)) if old is not None else []
    if dropped and not replace:
      raise SearchError(f"{path} holds {len(dropped)} file(s) that --audio={audio_dir} does not have (e.g. "
                        f"{printable(dropped[0])}): another folder, one not mounted, or files deleted or moved; "
                        "rerun with --replace to drop them from the index (nothing was changed)")
    not_embedded = len(skipped)
    known = {}
    if old is not None:
      if old.model_digest == model.digest:
        known = {f: (tuple(s), e) for f, s, e in zip(old.files, old.stamps, old.embeddings)}
      elif verbose:
        print(f"the model in {model.workdir} changed since {path} was built (step {old.model_step} -> "
              f"{model.step}): embedding every file again", flush=True)
    emb = np.zeros((len(files), len(model.dims)), np.float32)
    done = np.zeros(len(files), bool)
    todo = []
    for i, (f, s) in enumerate(zip(files, stamps)):
      if f in known and known[f][0] == tuple(s):
        emb[i], done[i] = known[f][1], True
      else:
        todo.append(i)
    bar = tqdm(total=len(todo), unit="file", desc="embedding", disable=not verbose or not todo)
    # Ctrl-C sets a flag that the loop reads between files (an exception raised inside a
    # decoder could be caught there): the files embedded so far are saved.
    stop = []
    try:
      previous = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    except ValueError:  # not the main thread
      previous = None
    try:
      for start in range(0, len(todo), batch_files):
        decoded, rows = [], []
        for i in todo[start: start + batch_files]:
          if stop:
            break
          try:
            decoded.append(audio_lib.decode(files[i]))
            rows.append(i)
          except audio_lib.BadAudio as e:
            skipped[files[i]] = str(e)
        if stop:
          break
        if decoded:
          emb[rows], done[rows] = model.embed(decoded), True
        bar.update(len(todo[start: start + batch_files]))
    finally:
      if previous is not None:
        signal.signal(signal.SIGINT, previous)
    interrupted = bool(stop)
    bar.close()
    index = cls(path, [f for f, k in zip(files, done) if k], stamps[done], emb[done], model.dims, model.disentangled,
                model.workdir, skipped, model_step=model.step, model_digest=model.digest)
    index.save()
    index.added = int(done[todo].sum()) if todo else 0
    index.not_embedded = len(skipped) - not_embedded
    if interrupted:
      raise IndexInterrupted(f"interrupted: {len(index.files)} files are in {path} ({index.added} embedded now); "
                             "rerun the same command to embed the rest")
    return index

  def vector(self, path: str) -> np.ndarray:
    """The stored embedding of an indexed file."""
    path = os.path.abspath(os.path.expanduser(path))
    if path not in self.files:
      raise SearchError(f"{path} is not in {self.path}: give --audio=FILE to embed it, or re-index")
    return self.embeddings[self.files.index(path)]

  def query(self, embedding: np.ndarray, aspect: str = "all", k: int = 10, method: str = "auto",
            nprobe: int = 32) -> list[tuple[str, float]]:
    """The k indexed files most similar to `embedding` in the aspect's subspace."""
    if not self.files:
      raise SearchError(f"{self.path} holds no tracks: index a folder that has audio files")
    mask = aspect_mask(self.dims, self.disentangled, aspect)
    idx, sims = self.searcher(aspect, method, nprobe).search(embedding[mask][None], min(k, len(self.files)))
    return [(self.files[i], float(s)) for i, s in zip(idx[0], sims[0]) if i >= 0]


def bench(sizes: list[int], dim: int, nprobes: list[int], k: int = 10, queries: int = 100, timed: int = 20) -> None:
  """Exact against approximate search on random unit vectors of two kinds: isotropic
  Gaussian (the worst case for any approximate index: no structure) and clustered (N/100
  Gaussian clusters, queries near stored vectors; closer to real embeddings). Prints the
  seconds to load (exact) or build (approximate) the index, the median latency of one
  query, and the approximate index's recall@k against exact search."""
  import time  # pylint: disable=import-outside-toplevel
  print(f"top-{k} cosine search, {dim}-d vectors; exact on {jax.devices()[0].device_kind}, approximate: faiss "
        f"IVF-Flat on the CPU; latency: median of {timed} single queries; recall@{k}: {queries} queries")
  print(f"{'vectors':>10} {'data':>9} {'exact load s':>12} {'exact ms':>9} {'ivf build s':>11} {'nprobe':>6} "
        f"{'ivf ms':>7} {'recall':>7}")

  def latency(searcher, q):
    searcher.search(q[:1], k)  # compiles / warms up
    times = []
    for j in range(timed):
      start = time.perf_counter()
      searcher.search(q[j: j + 1], k)
      times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))

  for n in sizes:
    for kind in ("gaussian", "clusters"):
      rng = np.random.default_rng(0)
      if kind == "gaussian":
        db = rng.normal(size=(n, dim)).astype(np.float32)
        q = rng.normal(size=(queries, dim)).astype(np.float32)
      else:
        centers = rng.normal(size=(max(n // 100, 1), dim)).astype(np.float32)
        db = centers[rng.integers(0, len(centers), n)] + rng.normal(size=(n, dim)).astype(np.float32)
        q = db[rng.integers(0, n, queries)] + 0.5 * rng.normal(size=(queries, dim)).astype(np.float32)
      start = time.perf_counter()
      exact = Exact(db)
      load = time.perf_counter() - start
      exact_ms = latency(exact, q)
      truth = exact.search(q, k)[0]
      del exact
      start = time.perf_counter()
      approx = Approx.build(db)
      build = time.perf_counter() - start
      for nprobe in nprobes:
        approx.index.nprobe = nprobe
        found = approx.search(q, k)[0]
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)])
        print(f"{n:>10} {kind:>9} {load:>12.2f} {exact_ms:>9.2f} {build:>11.1f} {nprobe:>6} "
              f"{latency(approx, q):>7.2f} {recall:>7.3f}", flush=True)


def _cli(argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  f = flags.FLAGS
  if len(argv) != 2 or argv[1] not in ("index", "query", "tag", "bench"):
    raise SearchError("give one command: index, query, tag or bench (see --help)")
  command = argv[1]
  for flag in ("k", "top", "nprobe", "dim"):
    if f[flag].value < 1:
      raise SearchError(f"--{flag}={f[flag].value} must be 1 or more")
  if command == "bench":
    try:
      sizes, nprobes = [int(n) for n in f.sizes], [int(p) for p in f.nprobes]
    except ValueError:
      raise SearchError(f"--sizes={','.join(f.sizes)} and --nprobes={','.join(f.nprobes)} take whole numbers") from None
    if min(sizes + nprobes) < 1:
      raise SearchError("--sizes and --nprobes take positive numbers")
    bench(sizes, f.dim, nprobes)
    return
  if command == "index":
    _require(workdir=f.workdir, audio=f.audio, out=f.out)
    index = Index.build(Model.load(f.workdir), f.audio, f.out, replace=f.replace)
    print(f"{index.path}: {len(index.files)} files ({index.added} embedded now), skipped {len(index.skipped)}")
    if f.method == "approx" or (f.method == "auto" and len(index.files) >= APPROX_MIN):
      for aspect in ASPECTS:
        index.searcher(aspect, "approx")
      print(f"approximate indexes of {', '.join(ASPECTS)} written to {index.path}.ann/")
    for path, reason in sorted(index.skipped.items()):
      print(f"  skipped {printable(path)}: {printable(reason)}")
    return
  if command == "query":
    _require(index=f.index)
    if bool(f.audio) == bool(f.path):
      raise SearchError("give exactly one of --audio=FILE (embedded now) or --path=INDEXED_PATH")
    index = Index.load(f.index)
    if f.audio:
      model = Model.load(f.workdir or index.workdir)
      index.check_model(model)
      vec = model.embed_files([f.audio])[0]
    else:
      vec = index.vector(f.path)
    hits = index.query(vec, f.aspect, f.k, f.method, f.nprobe)
    if f.json:
      print(json.dumps([{"path": p, "similarity": s} for p, s in hits], indent=1))
    else:
      note = "" if index.disentangled or f.aspect == "all" else " (model not disentangled: whole space)"
      method = type(index.searcher(f.aspect, f.method, f.nprobe)).__name__.lower()
      print(f"{len(hits)} most similar by {f.aspect}{note} ({method} search):")
      for p, s in hits:
        print(f"  {s:+.3f}  {printable(p)}")
    return
  _require(workdir=f.workdir, audio=f.audio)
  model = Model.load(f.workdir)
  tags = model.tag(model.embed_files([f.audio])[0], top=f.top)
  if f.json:
    print(json.dumps({c: [{"tag": t, "score": s} for t, s in v] for c, v in tags.items()}, indent=1))
  else:
    for cat, v in tags.items():
      print(f"{cat:<11} " + ", ".join(f"{t} {s:.2f}" for t, s in v))


def _require(**values):  # pylint: disable=missing-function-docstring
  missing = [k for k, v in values.items() if not v]
  if missing:
    raise SearchError(f"this command needs {', '.join('--' + m for m in missing)}")


def main(argv):
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
  _flags.DEFINE_enum("method", "auto", list(METHODS), "index / query: exact search, the approximate (faiss IVF) "
                     f"index, or auto: approximate from {APPROX_MIN:,} tracks.")
  _flags.DEFINE_integer("nprobe", 32, "query: cells of the approximate index scanned (more: better recall, slower).")
  _flags.DEFINE_list("nprobes", ["8", "32", "128"], "bench: nprobe values measured.")
  _flags.DEFINE_bool("json", False, "Print JSON.")
  _flags.DEFINE_bool("replace", False, "index: rewrite an index even when files it holds are not in --audio "
                     "(they are dropped from it).")
  app.run(main)
