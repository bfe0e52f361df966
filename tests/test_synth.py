"""The embedded dataset: schema, splits, determinism, audio sanity, tag separability."""

import os
import signal
import subprocess
import sys
import time

import librosa
import numpy as np
import pytest
import tensorflow_datasets as tfds

from musicrep_jax.data import features
from musicrep_jax.data import synth
from musicrep_jax.data import synth_music
from conftest import REPO, run_module


def test_builder_from_directory_reads_splits_and_categories(smoke_builder):
  b = tfds.builder_from_directory(smoke_builder.data_dir)
  assert set(b.info.splits) == {"train", "validation", "test", "test_triplets"}
  vocab = features.vocab_from_info(b.info)
  assert list(vocab) == list(features.CATEGORIES)
  assert len(vocab["genre"]) >= 8 and len(vocab["mood"]) >= 5
  assert len(vocab["instrument"]) >= 8 and len(vocab["era"]) >= 4
  ids = {s: [ex["track_id"] for ex in tfds.as_numpy(b.as_dataset(s))] for s in ("train", "validation", "test")}
  assert sum(len(v) for v in ids.values()) == len(set().union(*map(set, ids.values())))  # no track shared


def test_tracks_are_long_tagged_not_silent_not_clipped(smoke_builder):
  for ex in tfds.as_numpy(smoke_builder.as_dataset("train")):
    audio = ex["audio"].astype(np.float32) / 32768
    assert len(audio) >= 9 * features.SAMPLE_RATE  # three non-overlapping 3-s excerpts
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert np.mean(np.abs(audio) > 0.999) < 1e-3
    assert len(ex["genre"]) == len(ex["mood"]) == len(ex["era"]) == 1
    assert 2 <= len(ex["instrument"]) <= 4
    assert ex["tags"].sum() == 3 + len(ex["instrument"])
    np.testing.assert_array_equal(ex["tag_category"], features.tag_categories(synth.TAGS))


def test_rendering_is_deterministic_in_the_seed():
  a = synth.render_track(synth.sample_track_spec(123, 4.0))
  b = synth.render_track(synth.sample_track_spec(123, 4.0))
  c = synth.render_track(synth.sample_track_spec(124, 4.0))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_every_combination_is_possible_and_tags_co_occur():
  specs = [synth.sample_track_spec(s, 1.0) for s in range(3000)]
  genre_era = {(s.genre, s.era) for s in specs}
  assert len(genre_era) == len(synth.GENRES) * len(synth.ERAS)
  jazz = [s for s in specs if s.genre == "jazz"]
  metal = [s for s in specs if s.genre == "metal"]
  assert np.mean([s.era == "1950s" for s in jazz]) > 0.4 > np.mean([s.era == "1950s" for s in metal])
  assert np.mean(["electric_guitar" in s.instruments for s in metal]) > 0.5


def _render(n, **fixed):
  return [synth.render_track(synth.sample_track_spec(1000 + i, 6.0, **fixed)).astype(np.float32) / 32768
          for i in range(n)]


def test_simple_features_separate_the_tags_they_should():
  sr = features.SAMPLE_RATE
  # Tempo (onset autocorrelation) by genre: metal is fast, hip-hop slow.
  tempo = lambda xs: np.median([librosa.feature.tempo(y=x, sr=sr, start_bpm=120)[0] for x in xs])
  assert tempo(_render(4, genre="metal", mood="aggressive")) > tempo(_render(4, genre="hiphop", mood="sad"))
  # Bandwidth by era: 1950s production is band-limited, 2010s full-band.
  rolloff = lambda xs: np.median([np.median(librosa.feature.spectral_rolloff(y=x, sr=sr, roll_percent=0.99)) for x in xs])
  assert rolloff(_render(4, era="2010s")) > 1.3 * rolloff(_render(4, era="1950s"))
  # Note density by mood: aggressive tracks have more onsets per second than calm ones.
  onsets = lambda xs: np.median([len(librosa.onset.onset_detect(y=x, sr=sr)) for x in xs])
  assert onsets(_render(4, mood="aggressive", era="1990s")) > 1.3 * onsets(_render(4, mood="calm", era="1990s"))


def test_factor_triplets_control_one_category(smoke_builder):
  rows = {}
  for ex in tfds.as_numpy(smoke_builder.as_dataset("test_triplets")):
    tid, role, cat = ex["triplet"]
    rows.setdefault((tid, cat), {})[role] = {c: set(ex[c]) for c in features.CATEGORIES}
  assert len(rows) == 4 * synth_music.PRESETS["smoke"]["triplets_per_category"]
  for (_, cat), r in rows.items():
    a, p, n = r[0], r[1], r[2]
    c = features.CATEGORIES[cat]
    assert a[c] & p[c] and not (a[c] & n[c])
    for other in features.CATEGORIES:
      if other != c:
        assert not (a[other] & p[other]), other  # the positive differs elsewhere
        assert a[other] == n[other], other  # the negative differs in this category only


@pytest.mark.slow
def test_interrupted_build_is_never_read_and_rerun_completes(tmp_path):
  cmd = [sys.executable, "-m", "musicrep_jax.data", "--dataset=synth_music:smoke", f"--data_dir={tmp_path}"]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while time.time() < deadline and not list(tmp_path.glob("synth_music/smoke/incomplete*")):
    time.sleep(0.2)
  time.sleep(1.0)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  final = tmp_path / "synth_music" / "smoke" / "1.0.0"
  assert not final.exists()
  with pytest.raises(Exception):
    tfds.builder_from_directory(str(final))
  out = run_module("musicrep_jax.data", "--dataset=synth_music:smoke", f"--data_dir={tmp_path}")
  assert "ready in" in out.stdout
  assert tfds.builder_from_directory(str(final)).info.splits["train"].num_examples == 36


@pytest.mark.slow
def test_bad_dataset_arguments_exit_with_one_sentence(tmp_path):
  out = run_module("musicrep_jax.data", "--dataset=synth_music:huge", f"--data_dir={tmp_path}", check=False)
  assert out.returncode == 2 and "unknown synth_music preset 'huge'" in out.stderr
  out = run_module("musicrep_jax.data", "--dataset=synth_music", f"--data_dir={tmp_path}",
                   f"--soundfont={tmp_path}/none.sf2", check=False)
  assert out.returncode == 2 and "does not exist" in out.stderr
  assert not os.path.exists(tmp_path / "synth_music")
