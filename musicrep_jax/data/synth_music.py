"""TFDS builder `synth_music`: the embedded default dataset, rendered on the user's machine.

Splits: train / validation / test hold ordinary tracks (no track shared: each has its
own seed); `test_triplets` holds factor-controlled triplets for each category c:

- genre, mood, era: anchor and positive share c's tag; the positive has another tag in
  each other category and no melodic instrument of the anchor's; the negative keeps the
  anchor's other tags (its instruments too) and has another tag of c.
- instrument: anchor and positive share an instrument y of the anchor's and no other
  melodic instrument; the positive has another genre, mood and era; the negative keeps
  the anchor's genre, mood and era, lacks y and shares no melodic instrument with it.

Every tag and instrument set that a triplet does not fix is drawn as a training track
draws it (the genre's preferences, 2-4 instruments with the rhythm section as often as
the constraint allows), redrawn until it meets the constraint; tempo, key, progression
and GM programs follow the same rules as for every track. So positives and negatives
come from the training distribution (tests/test_synth.py measures it) and a model is
not told apart from an unseen track by, say, a missing rhythm section.

Presets: `smoke`, default, `large` (with --size); `decorrelated` and
`smoke_decorrelated` are the same sizes with tags drawn independently of the genre
(preference 0): a control that removes the shortcuts correlated tags offer.
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
TRIPLET_SECONDS = 3.0  # one evaluation window: 500 triplets a category fit the build budget
SPLIT_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000, "test_triplets": 3_000_000}


@dataclasses.dataclass
class SynthMusicConfig(tfds.core.BuilderConfig):
  num_train: int = 3000
  num_validation: int = 300
  num_test: int = 600
  triplets_per_category: int = 500
  preference: float = synth.PREFERENCE  # 0: tags independent of the genre (the decorrelated control)
  seed: int = 0
  soundfont: str = ""  # empty: pretty_midi's TimGM6mb.sf2; several, comma-separated: one per track, in turn
  workers: int = 0  # 0: all cores


SMOKE = dict(num_train=36, num_validation=8, num_test=12, triplets_per_category=8)
PRESETS = {
    "smoke": SMOKE,
    "default": dict(),
    "large": dict(num_train=20000, num_validation=2000, num_test=4000, triplets_per_category=1000),
    "decorrelated": dict(preference=0.0),
    "smoke_decorrelated": dict(SMOKE, preference=0.0),
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
  fonts = [synth.default_soundfont() if f == "default" else os.path.abspath(f)
           for f in soundfont.split(",")] if soundfont else []
  if fonts:
    digest = hashlib.sha1()
    for font in fonts:
      if not os.path.isfile(font):
        raise errors.DatasetError(f"--soundfont={font} does not exist: give the path of an SF2 or SF3 file "
                                  "(several: comma-separated; 'default' is the bundled TimGM6mb)")
      with open(font, "rb") as f:
        digest.update(f.read())
    name += "-sf" + digest.hexdigest()[:8]
  return SynthMusicConfig(name=name, description=f"synth_music preset {preset}", seed=seed,
                          soundfont=",".join(fonts), **kwargs)


def _render_job(job):
  """Worker: (key, spec kwargs, triplet fields) -> (key, example). Top-level for pickling."""
  key, seed, duration, fixed, triplet, preference, soundfont = job
  spec = synth.sample_track_spec(seed, duration, preference=preference, **fixed)
  fonts = soundfont.split(",")  # several: track seed k renders with the (k mod n)-th
  audio = synth.render_track(spec, features.SAMPLE_RATE, fonts[seed % len(fonts)] or None)
  tags = {"genre": [spec.genre], "mood": [spec.mood], "instrument": list(spec.instruments), "era": [spec.era]}
  example = dict(audio=audio, track_id=key, triplet=np.array(triplet, np.int32),
                 factors={k: np.float32(v) for k, v in spec.factors().items()},
                 **features.encode_tags(synth.TAGS, tags))
  return key, example


MELODIC = tuple(i for i in synth.INSTRUMENTS if i not in ("drums", "bass"))


def _redraw(draw, accept, what: str, tries: int = 10_000):
  """draw() until accept(value): the training distribution conditioned on a constraint."""
  for _ in range(tries):
    value = draw()
    if accept(value):
      return value
  raise RuntimeError(f"no {what} meets the triplet's constraint in {tries} draws")  # a bug in the constraint


def triplet_jobs(seed: int, per_category: int, preference: float = synth.PREFERENCE):
  """(key, seed, duration, fixed tags, triplet fields) for the factor-controlled triplets."""
  rng = np.random.default_rng(seed + SPLIT_OFFSETS["test_triplets"])
  base = seed * 10_000_000 + SPLIT_OFFSETS["test_triplets"]
  jobs = []

  def tag(category, genre, exclude):
    prefs = {g: 1.0 for g in synth.GENRES} if category == "genre" else synth.GENRE_STYLE[genre][category + "s"]
    return _redraw(lambda: synth.pick(rng, synth.TAGS[category], prefs, preference), lambda t: t != exclude, category)

  def instruments(genre, must=(), forbid=()):
    # A set shaped like a training track's: its size and rhythm section (drums, bass) are
    # those of a fresh training draw for the genre, redrawn until compatible with the
    # constraint; its melodic members are drawn by the genre's weights among the allowed
    # ones. (Conditioning a whole draw on the constraint would favour small sets and a
    # rhythm section, which overlap the anchor less.)
    weights = dict(zip(synth.INSTRUMENTS, synth.instrument_weights(genre, preference)))
    for _ in range(1000):
      shape = synth.pick_instruments(rng, genre, preference)
      rhythm_part = {i for i in shape if i not in MELODIC}
      fixed = rhythm_part | {m for m in must if m in MELODIC}
      pool = [m for m in MELODIC if m not in forbid and m not in fixed]
      k = len(shape) - len(fixed)
      if rhythm_part & set(forbid) or not set(must) <= fixed or not 0 <= k <= len(pool):
        continue
      p = np.array([weights[m] for m in pool])
      chosen = rng.choice(len(pool), size=k, replace=False, p=p / p.sum()) if k else []
      return tuple(i for i in synth.INSTRUMENTS if i in fixed or i in {pool[j] for j in chosen})
    raise RuntimeError(f"no instrument set has {must} without {forbid}")  # a bug in the constraint

  def melodic(names):
    return set(names) & set(MELODIC)

  for c_idx, category in enumerate(features.CATEGORIES):
    for t in range(per_category):
      tid = c_idx * per_category + t
      a_seed = base + 3 * tid
      a = synth.sample_track_spec(a_seed, TRIPLET_SECONDS, preference=preference)
      anchor = dict(genre=a.genre, mood=a.mood, instruments=a.instruments, era=a.era)
      pos, neg = {}, dict(anchor)
      pos["genre"] = a.genre if category == "genre" else tag("genre", None, a.genre)
      for other in ("mood", "era"):
        pos[other] = anchor[other] if category == other else tag(other, pos["genre"], anchor[other])
      if category == "instrument":
        y = a.instruments[rng.integers(len(a.instruments))]
        pos["instruments"] = instruments(pos["genre"], must={y}, forbid=melodic(a.instruments) - {y})
        neg["instruments"] = instruments(a.genre, forbid=melodic(a.instruments) | {y})
      else:
        pos["instruments"] = instruments(pos["genre"], forbid=melodic(a.instruments))
        neg[category] = tag(category, a.genre, anchor[category])
      for role, fixed in enumerate((anchor, pos, neg)):
        jobs.append((f"triplet{tid:05d}_{'apn'[role]}", a_seed + role, TRIPLET_SECONDS, fixed, (tid, role, c_idx),
                     preference))
  return jobs


class SynthMusic(tfds.core.GeneratorBasedBuilder):
  """Procedurally composed music with genre, mood, instrument and era tags."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "First release.",
      "1.1.0": "Fair factor triplets (positives and negatives drawn from the training distribution of "
               "tags and instrument sets under the triplet's constraint), 500 per category of 3 s, "
               "decorrelated presets.",
  }
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
          [(f"{split}{i:06d}", base + i, TRACK_SECONDS, {}, features.NO_TRIPLET, cfg.preference)
           for i in range(n)], split)
    out["test_triplets"] = self._generate_examples(
        triplet_jobs(cfg.seed, cfg.triplets_per_category, cfg.preference), "test_triplets")
    return out

  def _generate_examples(self, jobs, split):
    cfg = self.builder_config
    jobs = [(*job, cfg.soundfont) for job in jobs]
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
