"""Real-corpus builders on small real audio files written here, bad files included."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from musicrep_jax.data import audio as audio_lib
from musicrep_jax.data import registry
from conftest import run_module

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
  b = registry.load("magnatagatune", str(tmp_path / "tfds"), manual_dir=str(mtat))
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 2, "validation": 1, "test": 1}
  assert b.info.features["era"].feature.num_classes == 0  # MagnaTagATune has no era tags
  assert set(b.info.features["instrument"].feature.names) == {"guitar", "piano"}


def test_missing_manual_dir_is_one_sentence(tmp_path):
  out = run_module("musicrep_jax.data", "--dataset=msd_lastfm50", f"--data_dir={tmp_path}", check=False)
  assert out.returncode == 2 and "--manual_dir" in out.stderr
  out = run_module("musicrep_jax.data", "--dataset=msd_lastfm50", f"--data_dir={tmp_path}",
                   f"--manual_dir={tmp_path}", check=False)
  assert out.returncode == 2 and "tags.tsv is missing" in out.stderr
