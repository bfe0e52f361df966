"""The embedded dataset: schema, splits, determinism, audio sanity, tag separability."""

import os
import signal
import time

import librosa
import numpy as np
from scipy import stats
import pytest
import tensorflow_datasets as tfds

from musicrep_jax.data import features
from musicrep_jax.data import synth
from musicrep_jax.data import synth_music
from conftest import run_module, start


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


FLUID_R3 = os.environ.get("MUSICREP_JAX_TEST_SOUNDFONT", "/usr/share/sounds/sf2/FluidR3_GM.sf2")


def _fresh_synth_render(spec, soundfont):
  """Reference: the notes through tinysoundfont's public Synth, parsed afresh for this track."""
  import tinysoundfont  # pylint: disable=import-outside-toplevel
  s = tinysoundfont.Synth(samplerate=features.SAMPLE_RATE, gain=-6.0)
  sfid = s.sfload(soundfont)
  for ch, program in enumerate(spec.programs):
    if program >= 0:
      s.program_select(ch, sfid, 0, program)
  s.program_select(synth.DRUM_CHANNEL, sfid, 128, 0, is_drums=True)
  sr, events = features.SAMPLE_RATE, []
  for onset, length, ch, key, velocity in synth.compose(spec):
    events += [(int(onset * sr), 1, ch, key, velocity), (int((onset + max(length, 0.03)) * sr), 0, ch, key, 0)]
  total, pos, out = int(spec.duration * sr), 0, []
  for sample, is_on, ch, key, velocity in sorted(events):
    sample = min(sample, total)
    if sample > pos:
      out.append(np.frombuffer(s.generate(sample - pos), np.float32))
      pos = sample
    s.noteon(ch, key, velocity) if is_on else s.noteoff(ch, key)  # pylint: disable=expression-not-assigned
  out.append(np.frombuffer(s.generate(total - pos), np.float32))
  return np.concatenate(out).reshape(-1, 2).mean(axis=1)


@pytest.mark.parametrize("soundfont", ["bundled", FLUID_R3])
def test_a_track_renders_the_same_whatever_the_process_rendered_before(soundfont):
  # The soundfont is parsed once per process and each track renders on a fresh copy: the
  # result must equal a synthesizer parsed afresh for that track, before and after others.
  if soundfont == "bundled":
    soundfont = synth.default_soundfont()
  elif not os.path.exists(soundfont):
    pytest.skip(f"{soundfont} is absent (Debian/Ubuntu: apt install fluid-soundfont-gm, or set "
                "MUSICREP_JAX_TEST_SOUNDFONT to another SF2)")
  spec = synth.sample_track_spec(31, 4.0)
  first = synth.render_notes(synth.compose(spec), spec.programs, spec.duration, features.SAMPLE_RATE, soundfont)
  for seed in (32, 33):  # long notes still sounding at the end of these must not leak
    other = synth.sample_track_spec(seed, 2.0)
    synth.render_notes(synth.compose(other), other.programs, other.duration, features.SAMPLE_RATE, soundfont)
  again = synth.render_notes(synth.compose(spec), spec.programs, spec.duration, features.SAMPLE_RATE, soundfont)
  np.testing.assert_array_equal(first, again)
  np.testing.assert_array_equal(first, _fresh_synth_render(spec, soundfont))
  assert np.abs(first).max() > 1e-3


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
  melodic = {synth.INSTRUMENTS.index(i) for i in synth_music.MELODIC}
  for (_, cat), r in rows.items():
    a, p, n = r[0], r[1], r[2]
    c = features.CATEGORIES[cat]
    assert (a[c] & p[c]) - n[c]  # anchor and positive share a tag of c that the negative lacks
    if c == "instrument":  # ... and no other melodic instrument; the negative shares none
      assert len(a[c] & p[c] & melodic) <= 1 and not (a[c] & n[c] & melodic)
    else:
      assert not (a[c] & n[c])
      assert not (a["instrument"] & p["instrument"] & melodic)
    for other in ("genre", "mood", "era"):
      if other != c:
        assert not (a[other] & p[other]), other  # the positive differs elsewhere
        assert a[other] == n[other], other  # the negative differs in this category only
    if c != "instrument":
      assert a["instrument"] == n["instrument"]


def _shape_table(sets_by_group):
  """Contingency tables of (instrument count), (drums?), (bass?) over groups of sets."""
  out = {}
  for name, fn in (("count", len), ("drums", lambda s: "drums" in s), ("bass", lambda s: "bass" in s)):
    values = sorted({fn(s) for sets in sets_by_group for s in sets})
    out[name] = [[sum(fn(s) == v for s in sets) for v in values] for sets in sets_by_group]
  return out


def test_triplet_positives_and_negatives_look_like_training_tracks():
  """Chi-square tests: the instrument count and rhythm section of positives and negatives
  follow the training tracks' distribution; today's earlier rule (positives got two
  melodic instruments, never drums or bass) fails the same test."""
  train = [synth.sample_track_spec(i, 9.0).instruments for i in range(2000)]
  jobs = synth_music.triplet_jobs(0, 250)
  roles = {r: [job[3]["instruments"] for job in jobs if job[4][1] == r] for r in (0, 1, 2)}
  for role in (1, 2):
    for name, table in _shape_table([train, roles[role]]).items():
      assert stats.chi2_contingency(table)[1] > 0.01, (role, name, table)
  rng = np.random.default_rng(0)
  old_positives = [tuple(rng.choice(synth_music.MELODIC, 2, replace=False)) for _ in roles[1]]
  old = _shape_table([train, old_positives])
  assert stats.chi2_contingency(old["count"])[1] < 1e-6 and stats.chi2_contingency(old["drums"])[1] < 1e-6


def test_triplet_tracks_are_as_loud_as_training_tracks():
  """KS test on the RMS level of rendered positives, negatives and training tracks."""
  def rms_db(spec):
    x = synth.render_track(spec).astype(np.float32) / 32768
    return 10 * np.log10(np.mean(x**2) + 1e-12)
  jobs = synth_music.triplet_jobs(0, 12)  # 48 triplets
  level = {r: [rms_db(synth.sample_track_spec(j[1], j[2], **j[3])) for j in jobs if j[4][1] == r] for r in (1, 2)}
  train = [rms_db(synth.sample_track_spec(10_000 + i, synth_music.TRIPLET_SECONDS)) for i in range(48)]
  for role in (1, 2):
    assert stats.ks_2samp(level[role], train).pvalue > 0.01, (role, np.mean(level[role]), np.mean(train))


@pytest.mark.slow
def test_interrupted_build_is_never_read_and_rerun_completes(tmp_path):
  proc = start("-m", "musicrep_jax.data", "--dataset=synth_music:smoke", f"--data_dir={tmp_path}")
  deadline = time.time() + 120
  while time.time() < deadline and not list(tmp_path.glob("synth_music/smoke/incomplete*")):
    time.sleep(0.2)
  time.sleep(1.0)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  final = tmp_path / "synth_music" / "smoke" / str(synth_music.SynthMusic.VERSION)
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


def _log_mel_stats(x):
  """Mean and spread of each log-mel band and of its frame-to-frame change: what a linear
  model on simple audio statistics can see."""
  m = np.log(librosa.feature.melspectrogram(y=x, sr=features.SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=48) + 1e-6)
  return np.concatenate([m.mean(1), m.std(1), np.abs(np.diff(m, axis=1)).mean(1)])


@pytest.mark.slow
def test_every_category_is_audible_to_a_linear_probe():
  """Decorrelated tracks (tags independent of the genre, so no category can be read off
  another): a logistic regression on log-mel statistics, 5-fold cross-validated, names
  each category's tag at least twice as often as chance, and tells each instrument's
  presence from its absence (balanced accuracy) better than chance on average."""
  import multiprocessing  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from sklearn.metrics import balanced_accuracy_score  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import cross_val_predict  # pylint: disable=import-outside-toplevel
  from sklearn.pipeline import make_pipeline  # pylint: disable=import-outside-toplevel
  from sklearn.preprocessing import StandardScaler  # pylint: disable=import-outside-toplevel
  specs = [synth.sample_track_spec(seed, 6.0, preference=0.0) for seed in range(70_000, 70_400)]
  with multiprocessing.get_context("spawn").Pool(2) as pool:  # rendering only: librosa stays in this process
    tracks = pool.map(synth.render_track, specs, chunksize=20)
  x = np.stack([_log_mel_stats(t.astype(np.float32) / 32768) for t in tracks])
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
  scores = {}
  for category in ("genre", "mood", "era"):
    y = np.array([getattr(spec, category) for spec in specs])
    scores[category] = balanced_accuracy_score(y, cross_val_predict(probe, x, y, cv=5))
    assert scores[category] >= 2.0 / len(synth.TAGS[category]), (category, scores)
  per_instrument = [balanced_accuracy_score(y, cross_val_predict(probe, x, y, cv=5))
                    for y in (np.array([i in spec.instruments for spec in specs]) for i in synth.INSTRUMENTS)]
  assert np.mean(per_instrument) >= 0.6 and min(per_instrument) > 0.5, per_instrument


def test_decorrelated_preset_draws_tags_independently():
  def table(preference):
    specs = [synth.sample_track_spec(i, 9.0, preference=preference) for i in range(3000)]
    return [[sum(s.genre == g and s.mood == m for s in specs) for m in synth.MOODS] for g in synth.GENRES]
  assert stats.chi2_contingency(table(synth.PREFERENCE))[1] < 1e-10  # the default: moods follow the genre
  assert stats.chi2_contingency(table(0.0))[1] > 0.001
  assert synth_music.make_config("smoke_decorrelated").preference == 0.0
  assert synth_music.make_config("smoke").preference == synth.PREFERENCE


@pytest.mark.slow
def test_decorrelated_smoke_builds_with_the_same_splits(tmp_path, smoke_builder):
  from musicrep_jax.data import registry  # pylint: disable=import-outside-toplevel
  builder = registry.load("synth_music:smoke_decorrelated", str(tmp_path))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == \
      {k: v.num_examples for k, v in smoke_builder.info.splits.items()}
  assert str(builder.info.version) == "1.1.0"


def test_several_soundfonts_render_the_tracks_in_turn(tmp_path):
  """--soundfont=a,b: a build of its own name, track seed k rendered with the (k mod 2)-th
  (shown with the bundled soundfont and a copy of it that is corrupted: odd seeds fail)."""
  broken = tmp_path / "broken.sf2"
  broken.write_bytes(b"not a soundfont" * 10)
  cfg = synth_music.make_config("smoke", soundfont=f"default,{broken}")
  assert cfg.name.startswith("smoke-sf") and cfg.soundfont == f"{synth.default_soundfont()},{broken}"
  assert synth_music.make_config("smoke").soundfont == ""  # the benchmark's build is unchanged
  job = lambda seed: ("t", seed, 3.0, {}, features.NO_TRIPLET, synth.PREFERENCE, cfg.soundfont)
  key, example = synth_music._render_job(job(2))  # pylint: disable=protected-access
  want = synth.render_track(synth.sample_track_spec(2, 3.0), features.SAMPLE_RATE)
  assert np.array_equal(example["audio"], want)
  with pytest.raises(Exception, match="not a readable SF2/SF3 soundfont"):
    synth_music._render_job(job(3))  # pylint: disable=protected-access
  with pytest.raises(Exception, match="does not exist"):
    synth_music.make_config("smoke", soundfont="default,/none.sf2")
