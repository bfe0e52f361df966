"""TFDS builder `synth_music`: the embedded default dataset, rendered on the user's machine.

Splits: train / validation / test hold ordinary tracks (no track shared: each has its
own seed); `test_triplets` holds factor-controlled triplets for each category: anchor
and positive share that category's tag and differ in every other category; the
negative keeps the anchor's other tags and differs in that category only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from musicrep_jax import errors
from musicrep_jax.data import features
from musicrep_jax.data import synth

TRACK_SECONDS = 9.0
TRIPLET_SECONDS = 6.0
SPLIT_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000, "test_triplets": 3_000_000}


@dataclasses.dataclass
class SynthMusicConfig(tfds.core.BuilderConfig):
  num_train: int = 3000
  num_validation: int = 300
  num_test: int = 600
  triplets_per_category: int = 50
  seed: int = 0
  soundfont: str = ""  # empty: pretty_midi's TimGM6mb.sf2
  workers: int = 0  # 0: all cores


PRESETS = {
    "smoke": dict(num_train=36, num_validation=8, num_test=12, triplets_per_category=2),
    "default": dict(),
    "large": dict(num_train=20000, num_validation=2000, num_test=4000, triplets_per_category=200),
}


def make_config(preset: str = "default", *, size: int | None = None, seed: int = 0,
                soundfont: str = "") -> SynthMusicConfig:
  """A builder config for a preset; non-default size, seed or soundfont get their own name."""
  if preset not in PRESETS:
    raise errors.DatasetError(f"unknown synth_music preset {preset!r}: choose one of {', '.join(PRESETS)}")
  kwargs = dict(PRESETS[preset])
  name = preset
  if size is not None:
    if size < 10:
      raise errors.DatasetError(f"--size={size} is too small: give at least 10 training tracks")
    kwargs.update(num_train=size, num_validation=max(size // 10, 4), num_test=max(size // 5, 4))
    name += f"-n{size}"
  if seed:
    name += f"-seed{seed}"
  if soundfont:
    if not os.path.isfile(soundfont):
      raise errors.DatasetError(f"--soundfont={soundfont} does not exist: give the path of an SF2 or SF3 file")
    with open(soundfont, "rb") as f:
      name += "-sf" + hashlib.sha1(f.read()).hexdigest()[:8]
  return SynthMusicConfig(name=name, description=f"synth_music preset {preset}", seed=seed,
                          soundfont=os.path.abspath(soundfont) if soundfont else "", **kwargs)


def _render_job(job):
  """Worker: (key, spec kwargs, triplet fields) -> (key, example). Top-level for pickling."""
  key, seed, duration, fixed, triplet, soundfont = job
  spec = synth.sample_track_spec(seed, duration, **fixed)
  audio = synth.render_track(spec, features.SAMPLE_RATE, soundfont or None)
  tags = {"genre": [spec.genre], "mood": [spec.mood], "instrument": list(spec.instruments), "era": [spec.era]}
  example = dict(audio=audio, track_id=key, triplet=np.array(triplet, np.int32),
                 factors={k: np.float32(v) for k, v in spec.factors().items()},
                 **features.encode_tags(synth.TAGS, tags))
  return key, example


def _other(rng, options, exclude):
  return [o for o in options if o not in exclude][rng.integers(len(options) - len(exclude))]


def triplet_jobs(seed: int, per_category: int):
  """(key, seed, duration, fixed tags, triplet fields) for the factor-controlled triplets."""
  rng = np.random.default_rng(seed + SPLIT_OFFSETS["test_triplets"])
  base = seed * 10_000_000 + SPLIT_OFFSETS["test_triplets"]
  jobs = []
  for c_idx, category in enumerate(features.CATEGORIES):
    for t in range(per_category):
      tid = c_idx * per_category + t
      a_seed = base + 3 * tid
      a = synth.sample_track_spec(a_seed, TRIPLET_SECONDS)
      anchor = dict(genre=a.genre, mood=a.mood, instruments=a.instruments, era=a.era)
      pos, neg = {}, dict(anchor)
      for other in ("genre", "mood", "era"):
        options = synth.TAGS[other]
        if other == category:
          pos[other] = anchor[other]
          neg[other] = _other(rng, options, [anchor[other]])
        else:
          pos[other] = _other(rng, options, [anchor[other]])
      rest = [i for i in synth.INSTRUMENTS if i not in a.instruments]
      melodic_rest = [i for i in rest if i not in ("drums", "bass")]
      if category == "instrument":
        shared = a.instruments[rng.integers(len(a.instruments))]
        pos["instruments"] = (shared, melodic_rest[rng.integers(len(melodic_rest))])
        neg["instruments"] = tuple(rng.choice(melodic_rest, size=min(2, len(melodic_rest)), replace=False))
      else:  # instruments disjoint from the anchor's
        pos["instruments"] = tuple(rng.choice(melodic_rest, size=min(2, len(melodic_rest)), replace=False))
      for role, fixed in enumerate((anchor, pos, neg)):
        jobs.append((f"triplet{tid:05d}_{'apn'[role]}", a_seed + role, TRIPLET_SECONDS, fixed, (tid, role, c_idx)))
  return jobs


class SynthMusic(tfds.core.GeneratorBasedBuilder):
  """Procedurally composed music with genre, mood, instrument and era tags."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [make_config(p) for p in PRESETS]
  DEFAULT_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=features.features_dict(synth.TAGS, synth.FACTOR_NAMES),
        description=__doc__,
        homepage="https://github.com/musicrep-jax/musicrep_jax",
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    sizes = {"train": cfg.num_train, "validation": cfg.num_validation, "test": cfg.num_test}
    out = {}
    for split, n in sizes.items():
      base = cfg.seed * 10_000_000 + SPLIT_OFFSETS[split]
      out[split] = self._generate_examples(
          [(f"{split}{i:06d}", base + i, TRACK_SECONDS, {}, features.NO_TRIPLET) for i in range(n)], split)
    out["test_triplets"] = self._generate_examples(
        triplet_jobs(cfg.seed, cfg.triplets_per_category), "test_triplets")
    return out

  def _generate_examples(self, jobs, split):
    cfg = self.builder_config
    jobs = [(k, s, d, f, t, cfg.soundfont) for k, s, d, f, t in jobs]
    workers = cfg.workers or os.cpu_count() or 1
    if len(jobs) < 100:  # starting worker processes costs more than it saves
      workers = 1
    bar = tqdm.tqdm(total=len(jobs), desc=f"rendering {split}", unit="track", leave=False)
    if workers == 1:
      for job in jobs:
        yield _render_job(job)
        bar.update()
    else:
      # spawn: forking a process that has TensorFlow's threads running is unsafe.
      with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for result in pool.imap(_render_job, jobs, chunksize=8):
          yield result
          bar.update()
    bar.close()
