"""Real-corpus builders on small real audio files written here, bad files included."""

import json
import os
import re

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import features
from musicrep_jax.data import registry
from conftest import run_module
import layouts

SR = 16000


def tone(seconds=4.0, sr=SR, freq=440.0, channels=1):
  t = np.arange(int(seconds * sr)) / sr
  x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.random.default_rng(int(freq)).normal(size=t.shape)
  return np.stack([x] * channels, 1) if channels > 1 else x


def write_good_and_bad(root):
  """Good WAV/FLAC/MP3/OGG files and one of each kind of bad file; returns {name: reason or None}."""
  os.makedirs(root, exist_ok=True)
  sf.write(os.path.join(root, "good.wav"), tone(freq=220), SR)
  sf.write(os.path.join(root, "good.flac"), tone(freq=330), SR)
  sf.write(os.path.join(root, "good.mp3"), tone(freq=440), SR)
  sf.write(os.path.join(root, "good.ogg"), tone(freq=550), SR)
  sf.write(os.path.join(root, "stereo44k.wav"), tone(sr=44100, channels=2, freq=660), 44100)
  sf.write(os.path.join(root, "long.flac"), tone(seconds=40, freq=770), SR)
  open(os.path.join(root, "empty.wav"), "wb").close()
  sf.write(os.path.join(root, "truncated.wav"), tone(freq=880), SR)
  with open(os.path.join(root, "truncated.wav"), "r+b") as f:
    f.truncate(30)
  with open(os.path.join(root, "random.mp3"), "wb") as f:
    f.write(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
  x = tone(freq=990).astype(np.float32)
  x[100] = np.nan
  sf.write(os.path.join(root, "nan.wav"), x, SR, subtype="FLOAT")
  x[100] = np.inf
  sf.write(os.path.join(root, "inf.wav"), x, SR, subtype="FLOAT")
  sf.write(os.path.join(root, "silent.wav"), np.zeros(4 * SR), SR)
  sf.write(os.path.join(root, "short.wav"), tone(seconds=1.0), SR)
  return ["good.wav", "good.flac", "good.mp3", "good.ogg", "stereo44k.wav", "long.flac"], \
         ["empty.wav", "truncated.wav", "random.mp3", "nan.wav", "inf.wav", "silent.wav", "short.wav"]


def test_decode_reads_formats_resamples_and_rejects_bad_files(tmp_path):
  good, bad = write_good_and_bad(tmp_path)
  for name in good:
    x = audio_lib.decode(str(tmp_path / name))
    assert x.dtype == np.int16 and x.ndim == 1 and len(x) >= 3 * SR
  assert len(audio_lib.decode(str(tmp_path / "stereo44k.wav"))) == 4 * SR  # resampled to 16 kHz mono
  assert len(audio_lib.decode(str(tmp_path / "long.flac"))) == 30 * SR  # middle 30 s
  for name in bad:
    with pytest.raises(audio_lib.BadAudio):
      audio_lib.decode(str(tmp_path / name))


def test_tagged_folder_builds_and_reports_every_skip(tmp_path):
  root = tmp_path / "music"
  good, bad = write_good_and_bad(root)
  with open(root / "categories.csv", "w") as f:
    f.write("tag,category\nrock,genre\njazz,genre\nhappy,mood\nsad,mood\nguitar,instrument\n80s,era\n")
  splits = ["train", "train", "train", "validation", "test", "train"]
  with open(root / "tags.csv", "w") as f:
    f.write("path,tags,split\n")
    for i, name in enumerate(good):
      f.write(f"{name},{'rock' if i % 2 else 'jazz'};{'happy' if i % 3 else 'sad'};guitar;80s;polka,{splits[i]}\n")
    for name in bad:
      f.write(f"{name},rock;happy,train\n")
    f.write("missing.wav,rock,train\n")
    f.write("good.wav,jazz,train\n")  # duplicate id
  data_dir = tmp_path / "tfds"
  out = run_module("musicrep_jax.data", "--dataset=tagged_folder", f"--data_dir={data_dir}", f"--manual_dir={root}")
  assert "skipped 9" in out.stdout
  builder = registry.load("tagged_folder", str(data_dir), manual_dir=str(root), build=False)
  b = tfds.builder_from_directory(builder.data_dir)
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 4, "validation": 1, "test": 1}
  report = json.load(open(os.path.join(builder.data_dir, "build_report.json")))
  reasons = {os.path.basename(r["file"]): r["reason"] for r in report["skipped"]}
  assert set(reasons) == set(bad) | {"missing.wav", "good.wav"}
  assert "missing" in reasons["missing.wav"]
  assert [r["reason"] for r in report["skipped"] if r["file"] == "good.wav"] == ["duplicate track id"]
  assert "silent" in reasons["silent.wav"] and "NaN" in reasons["nan.wav"] and "infinity" in reasons["inf.wav"] and "too short" in reasons["short.wav"]
  assert report["skipped_by_reason"]["unknown tag"] == len(good)  # 'polka'
  ex = next(iter(tfds.as_numpy(b.as_dataset("validation"))))
  names = b.info.features["genre"].feature.names
  assert [names[i] for i in ex["genre"]] == ["rock"] and ex["tags"].sum() == 4


def test_msd_and_magnatagatune_layouts(tmp_path):
  msd = tmp_path / "msd"
  os.makedirs(msd / "audio" / "A" / "B")
  ids = [f"TRAAA{i:03d}" for i in range(6)]
  for i, tid in enumerate(ids):
    sf.write(msd / "audio" / "A" / "B" / f"{tid}.clip.mp3", tone(freq=200 + 50 * i), SR)
  (msd / "tags.tsv").write_text("".join(f"{t}\trock,sad,00s,guitar\n" for t in ids))
  (msd / "train.txt").write_text("\n".join(ids[:4] + ["TRMISSING"]))
  (msd / "valid.txt").write_text(ids[4])
  (msd / "test.txt").write_text(ids[5])
  b = registry.load("msd_lastfm50", str(tmp_path / "tfds"), manual_dir=str(msd))
  assert b.info.splits["train"].num_examples == 4
  assert b.info.features["genre"].feature.num_classes == 28 and b.info.features["era"].feature.num_classes == 5

  mtat = tmp_path / "mtat"
  tags = ["guitar", "classical", "slow", "piano"]
  rows = ["\t".join(["clip_id", *tags, "mp3_path"])]
  for i, folder in enumerate("00cd"):
    rel = f"{folder}/clip{i}.mp3"
    os.makedirs(mtat / folder, exist_ok=True)
    sf.write(mtat / rel, tone(freq=300 + 40 * i), SR)
    rows.append("\t".join([str(i), "1", "0" if i % 2 else "1", "1", "0", rel]))
  (mtat / "annotations_final.csv").write_text("\n".join(rows) + "\n")
  os.makedirs(mtat / "e")
  sf.write(mtat / "e" / "untagged.mp3", tone(freq=700), SR)  # no top-50 tag: not in the clean split
  rows.append("\t".join(["9", "0", "0", "0", "0", "e/untagged.mp3"]))
  (mtat / "annotations_final.csv").write_text("\n".join(rows) + "\n")
  b = registry.load("magnatagatune", str(tmp_path / "tfds"), manual_dir=str(mtat))
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 2, "validation": 1, "test": 2}
  assert list(features.vocab_from_info(b.info)) == ["genre", "mood", "instrument"]  # no era tags in MagnaTagATune
  assert set(b.info.features["instrument"].feature.names) == {"guitar", "piano"}
  clean = registry.load("magnatagatune:clean", str(tmp_path / "tfds"), manual_dir=str(mtat))
  assert {k: v.num_examples for k, v in clean.info.splits.items()} == {"train": 2, "validation": 1, "test": 1}


def test_missing_manual_dir_is_one_sentence(tmp_path):
  out = run_module("musicrep_jax.data", "--dataset=msd_lastfm50", f"--data_dir={tmp_path}", check=False)
  assert out.returncode == 2 and "--manual_dir" in out.stderr
  out = run_module("musicrep_jax.data", "--dataset=msd_lastfm50", f"--data_dir={tmp_path}",
                   f"--manual_dir={tmp_path}", check=False)
  assert out.returncode == 2 and "tags.tsv is missing" in out.stderr


def _report(builder):
  return json.load(open(os.path.join(builder.data_dir, "build_report.json")))


def test_mtg_jamendo_subsets_splits_and_what_is_skipped(tmp_path):
  """The repository's layout: split-0 of the full set (three categories, CRLF validation
  file, .low.mp3 files), a subset, another split; what is skipped is listed by file and line."""
  root = layouts.mtg_jamendo(tmp_path / "mtg", extra_rows={"train": [
      layouts.mtg_row(99),  # its audio is missing
      layouts.mtg_row(3),  # a duplicate of line 5
      "track_0000020\tartist_20\talbum_20\t00/0.mp3\t200.0\tgenre---rock\tera---60s"]})  # a category MTG lacks
  out = run_module("musicrep_jax.data", "--dataset=mtg_jamendo", f"--manual_dir={root}",
                   f"--data_dir={tmp_path / 'tfds'}", "--workers=2")
  assert "(train: 13, validation: 4, test: 4;" in out.stdout, out.stdout
  assert "tracks: train 13, validation 4, test 4; categories: genre (3 tags), instrument (2 tags), moodtheme (3 tags)" \
      in out.stdout
  b = registry.load("mtg_jamendo", str(tmp_path / "tfds"), manual_dir=str(root), build=False)
  assert features.vocab_from_info(tfds.builder_from_directory(b.data_dir).info) == {
      "genre": ["electronic", "jazz", "rock"], "instrument": ["guitar", "piano"], "moodtheme": ["film", "happy", "sad"]}
  report = _report(b)
  assert {(r["file"], r["reason"]) for r in report["skipped"]} == {
      ("autotagging-train.tsv line 14: 99/99.mp3", "audio file missing"),
      ("autotagging-train.tsv line 15: track_0000003", "duplicate track id")}
  assert report["dropped_labels"] == [{"file": "autotagging-train.tsv line 16", "tag": "era---60s"}]
  ex = {e["track_id"].decode(): e for e in tfds.as_numpy(b.as_dataset("train"))}
  assert ex["track_0000004"]["tags"].sum() == 3 and len(ex["track_0000003"]["audio"]) == 4 * SR  # a .low.mp3 file

  mood = registry.load("mtg_jamendo:moodtheme-split1", str(tmp_path / "tfds"), manual_dir=str(root))
  assert features.vocab_from_info(mood.info) == {"moodtheme": ["film", "happy", "sad"]}
  assert {k: v.num_examples for k, v in mood.info.splits.items()} == {"train": 4, "validation": 4, "test": 12}


def test_mtg_jamendo_wrong_layouts_are_one_sentence(tmp_path):
  root = layouts.mtg_jamendo(tmp_path / "mtg", splits=(("train", range(0, 2)), ("validation", [2]), ("test", [3])))
  tsv = root / "data" / "splits" / "split-0" / "autotagging-test.tsv"
  cases = {"mtg_jamendo:nope": "mtg_jamendo:nope is unknown: give mtg_jamendo or mtg_jamendo:VARIANT",
           "mtg_jamendo:genre": "autotagging_genre-train.tsv is missing: --manual_dir must be a checkout"}
  for dataset, text in cases.items():
    with pytest.raises(registry.DatasetError, match=re.escape(text)):
      registry.load(dataset, str(tmp_path / "tfds"), manual_dir=str(root))
  original = tsv.read_text()
  for content, text in [("TRACK\tPATH\n", f"{tsv} line 1 is not MTG-Jamendo's header"),
                        (original + layouts.mtg_row(0) + "\n", "track_0000000 is in autotagging-train.tsv line 2 and "
                                                               "autotagging-test.tsv line 3: the official splits are "
                                                               "disjoint"),
                        (original + "track_1\ta\tb\t01/1.mp3\t1.0\trock\n", f"{tsv} line 3: the tag 'rock' is not "
                                                                         "category---tag")]:
    tsv.write_text(content)
    out = run_module("musicrep_jax.data", "--dataset=mtg_jamendo", f"--manual_dir={root}",
                     f"--data_dir={tmp_path / 'tfds'}", check=False)
    assert out.returncode == 2 and text in out.stderr.strip().splitlines()[-1], out.stderr[-1500:]
    assert "Traceback" not in out.stderr


def test_fma_subsets_tags_and_categories(tmp_path):
  root = layouts.fma(tmp_path / "fma")
  small = registry.load("fma", str(tmp_path / "tfds"), manual_dir=str(root))
  assert {k: v.num_examples for k, v in small.info.splits.items()} == {"train": 10, "validation": 1, "test": 1}
  assert features.vocab_from_info(small.info) == {"genre": ["Electronic", "Hip-Hop", "IDM", "Punk", "Rock"]}
  ex = {e["track_id"].decode(): e for e in tfds.as_numpy(small.as_dataset("train"))}
  names = small.info.features["genre"].feature.names
  assert sorted(names[i] for i in ex["fma_000002"]["genre"]) == ["Punk", "Rock"]  # genres_all: the leaf and its parent
  top = registry.load("fma:medium-top", str(tmp_path / "tfds"), manual_dir=str(root))
  assert sum(v.num_examples for v in top.info.splits.values()) == 16
  assert all(len(e["genre"]) == 1 for e in tfds.as_numpy(top.as_dataset("train")))
  (root / "categories.csv").write_text("tag,category\nRock,genre\nElectronic,genre\nPunk,style\nIDM,style\n")
  mapped = registry.load("fma", str(tmp_path / "tfds"), manual_dir=str(root))  # Hip-Hop is not mapped: left out
  assert features.vocab_from_info(mapped.info) == {"genre": ["Electronic", "Rock"], "style": ["IDM", "Punk"]}
  report = _report(mapped)
  assert report["skipped_by_reason"]["no tags"] == 4 and {d["tag"] for d in report["dropped_labels"]} == {"Hip-Hop"}
  (root / "fma_metadata" / "tracks.csv").write_text("a,b\nc,d\ntrack_id,\n1,2\n")
  with pytest.raises(registry.DatasetError, match=r"lines 1-2 lack the column\(s\) \(set, subset\)"):
    registry.load("fma", str(tmp_path / "tfds"), manual_dir=str(root))


def test_mtg_jamendo_recipe_end_to_end(tmp_path):
  """bench on an MTG-Jamendo-layout corpus, and search tag on its model: three subspaces
  (genre, instrument, moodtheme), nothing but the data differs from a synth_music run."""
  root = layouts.mtg_jamendo(tmp_path / "mtg")
  out = tmp_path / "bench"
  run_module("musicrep_jax.tools.bench", "--preset=smoke", f"--out={out}", "--configs=proxy_dis", "--seeds=1",
             f"--data_dir={tmp_path / 'tfds'}", "--dataset=mtg_jamendo", f"--manual_dir={root}", "--nostep_cost",
             "--override=train.max_epochs=1", "--override=train.steps_per_epoch=2")
  run = out / "runs" / "proxy_dis@mtg_jamendo-seed0"
  config, result = json.load(open(run / "config.json")), json.load(open(run / "eval.json"))
  assert config["model"]["subspace_dims"] == [8, 8, 8]
  assert list(result["roc_auc_per_category"]) == ["genre", "instrument", "moodtheme"]
  table = (out / "table.md").read_text()
  assert "| model | genre | instrument | moodtheme |" in table
  tags = run_module("musicrep_jax.search", "tag", f"--workdir={run}", f"--audio={root / 'audio' / '01' / '1.mp3'}")
  assert [l.split()[0] for l in tags.stdout.splitlines()] == ["genre", "instrument", "moodtheme"], tags.stdout
