"""search: index a folder of real audio files with a smoke-trained model, query it, tag."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import made_once, run_module, run_python
from musicrep_jax.search import index as index_lib


@pytest.fixture(scope="module")
def collection(data_dir, tmp_path_factory):
  """A trained proxy_dis smoke model and the dataset's train and test tracks as WAV files
  named <track>_<mood>.wav, plus one broken file (made once for the session's workers)."""
  root = made_once(tmp_path_factory, "search", lambda root: _make_collection(root, data_dir))
  return root / "run", root / "music", root


def _make_collection(root, data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from musicrep_jax.data import features, registry  # pylint: disable=import-outside-toplevel
  workdir, audio = root / "run", root / "music"
  # 10 epochs: the 3 of the smoke preset leave the subspaces too close to chance to test.
  run_module("musicrep_jax.main", "--config=configs/proxy_dis.py:smoke", f"--workdir={workdir}",
             f"--config.data_dir={data_dir}", "--config.train.max_epochs=10", "--config.train.learning_rate=0.002")
  builder = registry.load("synth_music:smoke", data_dir, build=False)
  moods = features.vocab_from_info(builder.info)["mood"]
  os.makedirs(audio / "sub")
  for split in ("train", "test"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      sf.write(audio / "sub" / f"{ex['track_id'].decode()}_{moods[ex['mood'][0]]}.wav", ex["audio"], 16000)
  (audio / "broken.mp3").write_bytes(b"these bytes are not audio\n" * 120)  # random bytes can parse


@pytest.mark.slow
def test_index_query_tag_cli(collection):
  workdir, audio, root = collection
  index = root / "music.npz"
  out = run_module("musicrep_jax.search", "index", f"--workdir={workdir}", f"--audio={audio}", f"--out={index}")
  assert ": 48 files (48 embedded now), skipped 1" in out.stdout and "broken.mp3: not a readable" in out.stdout
  out = run_module("musicrep_jax.search", "index", f"--workdir={workdir}", f"--audio={audio}", f"--out={index}")
  assert "(0 embedded now)" in out.stdout  # nothing new or changed
  first = sorted((audio / "sub").iterdir())[0]
  os.utime(first, ns=(1, 1))
  out = run_module("musicrep_jax.search", "index", f"--workdir={workdir}", f"--audio={audio}", f"--out={index}")
  assert "(1 embedded now)" in out.stdout

  for aspect in ("all", "mood"):
    out = run_module("musicrep_jax.search", "query", f"--index={index}", f"--path={first}", f"--aspect={aspect}",
                     "--k=5", "--json")
    hits = json.loads(out.stdout)
    assert len(hits) == 5 and str(first) not in [h["path"] for h in hits]  # the query's own file is left out
    assert all(a["similarity"] >= b["similarity"] for a, b in zip(hits, hits[1:]))
    i = index_lib.Index.load(str(index))
    both = i.query(i.vector(str(first)), aspect, k=6)  # the Python API leaves it in unless told
    assert both[0][0] == str(first) and both[0][1] == pytest.approx(1, abs=1e-5) and both[1:] == [
        (h["path"], pytest.approx(h["similarity"], abs=1e-6)) for h in hits]
  # A file that is not indexed, embedded on the fly, finds its indexed copy first.
  copy = root / "copy.wav"
  copy.write_bytes(first.read_bytes())
  out = run_module("musicrep_jax.search", "query", f"--index={index}", f"--audio={copy}", "--aspect=genre", "--json")
  assert json.loads(out.stdout)[0]["path"] == str(first)

  out = run_module("musicrep_jax.search", "tag", f"--workdir={workdir}", f"--audio={first}", "--json")
  tags = json.loads(out.stdout)
  assert list(tags) == ["genre", "mood", "instrument", "era"] and all(len(v) == 3 for v in tags.values())
  assert all(0 <= t["score"] <= 1 for v in tags.values() for t in v)

  out = run_module("musicrep_jax.search", "query", f"--index={index}", "--path=/nope.wav", check=False)
  assert out.returncode == 2 and "is not in" in out.stderr
  out = run_module("musicrep_jax.search", "tag", f"--workdir={root}", f"--audio={first}", check=False)
  assert out.returncode == 2 and "config.json is missing" in out.stderr


@pytest.mark.slow
def test_mood_subspace_ranks_same_mood_above_others(collection):
  from musicrep_jax import search  # pylint: disable=import-outside-toplevel
  workdir, audio, root = collection
  model = search.Model.load(str(workdir))
  index = search.Index.build(model, str(audio), str(root / "api.npz"), verbose=False)
  assert index.skipped and len(index.files) == 48
  # The API's embedding of a file equals the index's.
  np.testing.assert_allclose(model.embed_files([index.files[3]])[0], index.embeddings[3], rtol=1e-5, atol=1e-6)
  mood = np.array([os.path.basename(f).rsplit("_", 1)[1][:-4] for f in index.files])
  wins = []
  for i in range(len(index.files)):
    order = [index.files.index(p) for p, _ in index.query(index.embeddings[i], "mood", k=len(index.files))][1:]
    same = mood[order] == mood[i]
    if same.any() and (~same).any():  # P(a same-mood track is ranked above another-mood track)
      ranks = np.arange(len(order))
      wins.append((ranks[same][:, None] < ranks[~same][None]).mean())
  assert np.mean(wins) > 0.5, np.mean(wins)
  # The approximate index (faiss IVF) on 48 songs: the same first hit, kept beside the index.
  hits = index.query(index.embeddings[5], "mood", k=5, method="approx", nprobe=1000)
  # (The ReLU embedding can make two songs point the same way in a subspace: a tie at 1.)
  assert hits[0][1] == pytest.approx(1, abs=1e-5) and index.files[5] in [p for p, s in hits if s > 1 - 1e-5]
  assert os.path.exists(index.approx_path("mood"))


def _clustered(n, dim, rng):
  centers = rng.normal(size=(n // 50, dim))
  return (centers[rng.integers(0, len(centers), n)] + rng.normal(size=(n, dim))).astype(np.float32)


def test_exact_search_matches_numpy_and_approx_recall(tmp_path):
  """Exact search (in several device blocks) against numpy cosine ranking; the faiss IVF
  index against it: recall@10 on clustered vectors, its cosines, and its file lifecycle."""
  from musicrep_jax import search  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  db, q = _clustered(20000, 32, rng), None
  q = db[rng.integers(0, len(db), 50)] + 0.3 * rng.normal(size=(50, 32)).astype(np.float32)
  unit = db / np.linalg.norm(db, axis=1, keepdims=True)
  cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
  want = np.argsort(-cos, axis=1, kind="stable")[:, :10]
  idx, sims = search.Exact(db, chunk=6000).search(q, 10)  # 4 blocks, merged on the host
  np.testing.assert_array_equal(idx, want)
  np.testing.assert_allclose(sims, np.take_along_axis(cos, want, 1), atol=1e-5)
  i1, s1 = search.top_k(db, q[0], 10)
  np.testing.assert_array_equal(i1, want[0])

  approx = search.Approx.build(db, nprobe=16)
  found, asims = approx.search(q, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, want)])
  assert recall >= 0.9, recall
  np.testing.assert_allclose(asims, np.take_along_axis(cos, found, 1), atol=1e-5)  # true cosines of its hits

  # An Index uses it from APPROX_MIN tracks ("auto"); the file is rebuilt for a new version.
  index = search.Index(str(tmp_path / "i.npz"), [f"/m/{i}.wav" for i in range(len(db))], np.zeros((len(db), 2)),
                       db, np.repeat(np.arange(4), 8), True, "/run", {})
  index.save()
  assert isinstance(index.searcher("all"), search.Exact)
  assert isinstance(index.searcher("genre", "approx"), search.Approx)
  first = index.approx_path("genre")
  loaded = search.Index.load(index.path)
  assert loaded.version == index.version and isinstance(loaded.searcher("genre", "approx"), search.Approx)
  index.save()
  index.searcher("genre", "approx")
  assert not os.path.exists(first) and os.listdir(tmp_path / "i.npz.ann") == [os.path.basename(index.approx_path("genre"))]
  with pytest.raises(search.SearchError, match="--method='fast' is unknown"):
    index.searcher("all", "fast")
  empty = search.Index(str(tmp_path / "e.npz"), [], np.zeros((0, 2)), np.zeros((0, 32), np.float32),
                       np.repeat(np.arange(4), 8), True, "/run", {})
  with pytest.raises(search.SearchError, match="holds no tracks"):
    empty.query(db[0])


@pytest.mark.slow
def test_every_common_format_is_indexed_and_other_files_are_listed(collection):
  from musicrep_jax.data import audio  # pylint: disable=import-outside-toplevel
  workdir, audio_dir, root = collection
  folder = root / "formats"
  folder.mkdir()
  wav = sorted((audio_dir / "sub").iterdir())[0]
  x, rate = sf.read(wav)
  exts = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff")
  for ext in exts:
    audio.encode(str(folder / f"song{ext}"), x, rate)
  (folder / "notes.txt").write_text("liner notes")
  index = root / "formats.npz"
  out = run_module("musicrep_jax.search", "index", f"--workdir={workdir}", f"--audio={folder}", f"--out={index}")
  assert f": {len(exts)} files ({len(exts)} embedded now), skipped 1" in out.stdout, out.stdout
  assert "notes.txt: not a supported audio format (.txt" in out.stdout
  # Every encoding of one song is that song: each finds the others nearest (cosine near 1).
  hits = json.loads(run_module("musicrep_jax.search", "query", f"--index={index}", f"--path={folder / 'song.wav'}",
                               "--k=7", "--json").stdout)
  assert {h["path"] for h in hits} == {str(folder / f"song{e}") for e in exts if e != ".wav"}
  assert min(h["similarity"] for h in hits) > 0.9


def test_search_imports_no_tensorflow():
  """search reads no dataset: its commands start without TensorFlow's import (seconds)."""
  out = run_python("-c", "import sys, musicrep_jax.search.cli; print(sorted(m for m in ('tensorflow', "
                   "'tensorflow_datasets') if m in sys.modules))", cold=True)
  assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_real_audio_benchmark_groups_by_folder_and_prints_every_row(collection, tmp_path):
  """tools/real_audio.py on the collection grouped by mood (one folder per mood): every
  row, the broken file counted as skipped, chance from the group sizes."""
  import shutil  # pylint: disable=import-outside-toplevel
  workdir, audio, _ = collection
  root = tmp_path / "by_mood"
  for f in sorted((audio / "sub").iterdir()):
    mood = f.stem.rsplit("_", 1)[1]
    (root / mood).mkdir(parents=True, exist_ok=True)
    shutil.copy(f, root / mood / f.name)
  shutil.copy(audio / "broken.mp3", root / mood / "broken.mp3")
  sizes = np.array([len([f for f in d.iterdir() if f.suffix == ".wav"]) for d in sorted(root.iterdir())])
  out = run_module("musicrep_jax.tools.real_audio", f"--audio={root}", f"--run={workdir}", f"--out={tmp_path / 'r.json'}")
  assert f"48 tracks of {len(sizes)} groups" in out.stdout and "skipped 1" in out.stdout, out.stdout
  rows = json.load(open(tmp_path / "r.json"))["rows"]
  name = workdir.name
  assert list(rows) == [f"{name}: whole embedding", *(f"{name}: {c} subspace" for c in ("genre", "mood", "instrument", "era")),
                        "untrained network", "MFCC statistics (20 x mean, sd)", "log-mel statistics (mean, sd per band)",
                        "chance"]
  assert rows["chance"]["precision_at_5"] == pytest.approx(np.sum(sizes * (sizes - 1)) / (48 * 47))
  assert all(0 <= r["precision_at_5"] <= 1 and 0 <= r["nn_accuracy"] <= 1 for r in rows.values())
  assert all(f"| {r} | " in out.stdout for r in rows)
  bad = run_module("musicrep_jax.tools.real_audio", f"--audio={root / mood}", f"--run={workdir}", check=False)
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(f"error: --audio={root / mood} has 0"), \
      bad.stderr[-2000:]
