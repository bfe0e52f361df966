"""Searchers: exact cosine search on the accelerator and approximate search with faiss;
the approximate indexes kept beside an index file (INDEX.ann/); `search bench`."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time

import jax
import numpy as np

from musicrep_jax import losses
from musicrep_jax import metrics
from musicrep_jax.search.trained import SearchError

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


def kept(path: str, aspect: str, vectors: np.ndarray) -> Approx:
  """The approximate index of `vectors` kept at `path` (INDEX.ann/<aspect>-<version>.faiss):
  loaded when it is ours and matches, else built and kept there. INDEX.ann must be a real
  folder: through a link or over a file nothing is read, written or deleted. Only our own
  files of older versions (<aspect>-<32 hex digits>.faiss, regular files) are deleted.
  An index folder that cannot be written leaves the index built for this process only,
  with a note."""
  folder = os.path.dirname(path)
  if os.path.islink(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
    raise SearchError(f"{folder} is {'a link' if os.path.islink(folder) else 'not a folder'}: it must be the "
                      "index's own folder of approximate indexes; move it away (nothing was changed)")
  if os.path.isfile(path) and not os.path.islink(path):
    import faiss  # pylint: disable=import-outside-toplevel
    try:
      stored = faiss.read_index(path)
      if isinstance(stored, faiss.IndexIVFFlat) and stored.d == vectors.shape[1] and stored.ntotal == len(vectors):
        return Approx(stored)
    except RuntimeError:  # truncated or corrupt
      pass
    print(f"{path} is not this index's approximate index (corrupt or another one): building it again",
          file=sys.stderr, flush=True)
  approx = Approx.build(vectors)
  try:
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):  # drop those of older versions
      full = os.path.join(folder, old)
      if re.fullmatch(rf"{re.escape(aspect)}-[0-9a-f]{{32}}\.faiss", old) and os.path.isfile(full) \
          and not os.path.islink(full):
        os.remove(full)
    approx.save(path)
  except OSError as e:
    print(f"note: the approximate index could not be kept in {folder} ({e.strerror}): built for this query only",
          file=sys.stderr, flush=True)
  return approx


def bench(sizes: list[int], dim: int, nprobes: list[int], k: int = 10, queries: int = 100, timed: int = 20) -> None:
  """Exact against approximate search on random unit vectors of two kinds: isotropic
  Gaussian (the worst case for any approximate index: no structure) and clustered (N/100
  Gaussian clusters, queries near stored vectors; closer to real embeddings). Prints the
  seconds to load (exact) or build (approximate) the index, the median latency of one
  query, and the approximate index's recall@k against exact search."""
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
