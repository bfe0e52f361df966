"""The shared base of every config in configs/, and its presets.

`get_config(arg)` of a model file calls `base(arg)` and sets only what differs for that
model. The arg picks a preset: "" (default, sized for a 2-core CPU), "smoke" (tiny,
for tests) or "paper" (the paper's backbone and schedule, for GPU/TPU).
"""

from __future__ import annotations

import importlib.util
import math
import os

import ml_collections

from musicrep_jax import errors

PRESETS = ("default", "smoke", "paper")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # a checkout (configs/ beside the package)
CONFIGS_DIR = os.path.join(REPO, "configs")
# The evaluators of evaluate.EVALUATORS that a run computes (drop names to skip tasks).
EVAL_TASKS = ("training_time", "retrieval", "tagging", "tag_triplets", "track_triplets", "factor_triplets",
              "shortcut", "human_triplets", "open_set")


def base(arg: str | None = None) -> ml_collections.ConfigDict:
  preset = arg or "default"
  if preset not in PRESETS:
    raise errors.ConfigError(f"unknown preset {preset!r} in --config=...:{preset}: choose one of {', '.join(PRESETS)}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.dataset = "synth_music"
  c.data_dir = "~/tensorflow_datasets"
  c.manual_dir = ""
  # synth_music rendered with another SF2/SF3 soundfont (a build of its own): e.g.
  # `--mode=eval` of a run on timbres it never heard (python -m musicrep_jax.data --soundfont=...)
  c.soundfont = ""
  c.human_triplets = ""  # optional dim-sim style CSV for evaluation
  c.baseline = ""  # "random", "untrained" or "logmel": evaluate that baseline instead of training (baselines.py)

  c.audio = dict(crop_seconds=3.0, n_fft=1024, hop=500, n_mels=64)
  # head="relu": the paper's embedding, ReLU(Dense) of the pooled backbone features;
  # "linear": ReLU(Dense(hidden)) then a linear Dense embedding. subdense: one Dense per
  # category subspace (the paper's disentangled classifier).
  c.model = dict(stem_features=16, features=32, blocks=3, hidden=128, subspace_dims=(32, 32, 32, 32),
                 head="relu", subdense=False, tag_weight_scale=1.0, dtype="float32")
  # sampler (triplet losses): "in_batch" embeds each excerpt once and forms the triplets
  # inside the batch; "paper" embeds anchor, positive and negative as separate inputs.
  # temperature: Proxy-NCA's, the supervised contrastive loss's and the batch-hard soft
  # margin's (soft_margin=True); ms_*: the multi-similarity loss's alpha, beta, base
  # (lambda) and miner epsilon (Wang et al. 2019's; pytorch-metric-learning's defaults).
  c.loss = dict(name="proxy", disentangled=False, margin=0.1, track_weight=0.0, temperature=0.11,
                sampler="in_batch", soft_margin=False, ms_alpha=2.0, ms_beta=50.0, ms_base=0.5, ms_epsilon=0.1)
  # One stopping and model-selection rule for every model (select_by="quality"): the
  # plateau schedule watches the validation quality (mean of validation recall@1 and
  # tagging ROC-AUC, evaluate.validation_quality), not each loss's own validation loss,
  # which is not comparable across losses and is noisy for triplet losses (they stopped
  # after 8-16 epochs while their validation quality still rose). select_by="loss" is the
  # rule of the first comparison (patience 2, 1 reduction, threshold 0.005: docs/RESULTS.md).
  # The default preset: a small backbone, 32-step "epochs" (1,024 crops, a third of the
  # training tracks; 0 means a full pass), patience 3, two learning-rate reductions, and an
  # epoch improves when its quality beats the best by 0.2% (about 0.0015).
  c.train = dict(batch_size=32, learning_rate=0.005, max_epochs=150, steps_per_epoch=32,
                 plateau_factor=5.0, plateau_patience=3, max_reductions=2, seed=0,
                 log_every_steps=10, checkpoint_every_steps=200, shuffle_buffer=512,
                 preemption_grace_s=30.0, validation_quality=True, plateau_threshold=0.002, select_by="quality")
  # Training-time augmentation (augment.py; off by default, enabled=True for all): each
  # transform's probability and range, drawn per excerpt inside the jitted step. Gain
  # +-gain_db; reverb (probability) with a synthetic room of rt60 s at reverb_wet_db;
  # noise at snr_db; saturate with a tanh drive; eq: eq_bands random gains of +-eq_db;
  # pitch +-pitch_semitones and tempo +-tempo_range (a fraction), as spectrogram warps.
  c.augment = dict(enabled=False, gain_db=6.0, reverb=0.5, rt60=(0.2, 1.2), reverb_wet_db=(-12.0, 0.0),
                   noise=0.5, snr_db=(10.0, 40.0), saturate=0.3, drive=(1.0, 4.0), eq=0.8, eq_db=6.0,
                   eq_bands=6, pitch=0.5, pitch_semitones=1.0, tempo=0.5, tempo_range=0.08)
  # Unlabelled recordings beside the labelled batches (unlabelled.py; off without a folder):
  # `tracks` tracks a step, two excerpts each, and weight x the contrastive term
  # (losses.track_contrastive_loss, at `temperature`) added to the loss.
  c.unlabelled = dict(folder="", tracks=8, weight=1.0, temperature=0.1)
  # The training condition (musicrep_jax/conditions.py; bench --condition): held-out tags,
  # a fraction of labelled tracks, dropped positive labels.
  c.condition = dict(open_set=False, label_fraction=1.0, drop_positive=0.0)
  c.eval = dict(batch_size=64, checkpoint="best", prototype_tracks=2000, max_tracks=0,
                triplets_per_category=4000, tasks=EVAL_TASKS, distance="cosine")

  if preset == "smoke":
    c.dataset = "synth_music:smoke"
    c.audio.update(n_fft=512, hop=750, n_mels=32)
    c.model.update(stem_features=8, features=16, blocks=1, hidden=32, subspace_dims=(8, 8, 8, 8))
    c.train.update(batch_size=12, max_epochs=3, steps_per_epoch=8, log_every_steps=4,
                   checkpoint_every_steps=10, shuffle_buffer=64)
    c.eval.update(batch_size=32, triplets_per_category=200)
  elif preset == "paper":
    c.audio.update(n_fft=1024, hop=375, n_mels=128)  # 3 s at 16 kHz -> 129 frames
    c.model.update(stem_features=64, features=256, blocks=6, hidden=256, subspace_dims=(64, 64, 64, 64))
    c.train.update(batch_size=64, max_epochs=200, steps_per_epoch=0, plateau_patience=10, max_reductions=5,
                   plateau_threshold=0.0, checkpoint_every_steps=1000, shuffle_buffer=4096)
    c.eval.update(batch_size=256, prototype_tracks=20000)
  return c


def load(name: str, preset: str | None = None) -> ml_collections.ConfigDict:
  """The config of configs/<name>.py with a preset, as `--config=configs/<name>.py:<preset>` gives it."""
  path = os.path.join(CONFIGS_DIR, f"{name}.py")
  if not os.path.exists(path):
    raise errors.ConfigError(f"configs/{name}.py does not exist")
  spec = importlib.util.spec_from_file_location(f"configs.{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(None if preset in (None, "", "default") else preset)


def override(config: ml_collections.ConfigDict, assignments: list[str]) -> ml_collections.ConfigDict:
  """Applies "section.key=value" strings, the value parsed as a Python literal when it
  is one (as `--config.section.key=value` does for main)."""
  import ast  # pylint: disable=import-outside-toplevel
  for a in assignments:
    key, sep, text = a.partition("=")
    section, _, name = key.partition(".")
    if not sep or section not in config or name not in config[section]:
      raise errors.ConfigError(f"--override={a!r}: give section.key=value with an existing key, e.g. model.dtype=bfloat16")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    config[section][name] = value
  return config


POSITIVE = ("train.batch_size", "train.learning_rate", "train.max_epochs", "train.log_every_steps",
            "train.checkpoint_every_steps", "train.shuffle_buffer", "train.preemption_grace_s",
            "audio.crop_seconds", "audio.n_fft", "audio.hop", "audio.n_mels", "model.stem_features",
            "model.features", "model.blocks", "model.hidden", "loss.temperature", "loss.ms_alpha", "loss.ms_beta", "eval.batch_size",
            "eval.prototype_tracks")
NON_NEGATIVE = ("train.steps_per_epoch", "train.plateau_patience", "train.max_reductions", "train.plateau_threshold",
                "loss.margin", "loss.ms_epsilon",
                "loss.track_weight", "eval.max_tracks", "eval.triplets_per_category")


def _choices() -> dict:
  from musicrep_jax import evaluate  # pylint: disable=import-outside-toplevel
  from musicrep_jax import objective  # pylint: disable=import-outside-toplevel
  return {"loss.name": tuple(objective.LOSSES), "model.head": ("relu", "linear"),
          "model.dtype": ("float32", "bfloat16"), "eval.checkpoint": ("best", "latest"),
          "eval.distance": ("cosine", "euclidean", "dot")}, tuple(evaluate.EVALUATORS)


def _key(config, dotted: str):
  section, key = dotted.split(".")
  return config[section][key]


def fit_subspaces(config: ml_collections.ConfigDict, categories) -> None:
  """One subspace per category of the dataset: `model.subspace_dims` gives one size per
  category. The preset's own sizes (equal: 32 x 4 by default), when the user left them,
  follow the dataset's category count (32 x 3 on MTG-Jamendo), set in the config (and so
  in the run's config.json and its checkpoint's identity); sizes given by the user that
  do not match the categories are an error naming them."""
  dims = tuple(config.model.subspace_dims)
  if len(dims) == len(categories):
    return
  preset = tuple(base(config.get("preset", "default")).model.subspace_dims)
  if dims != preset:
    raise errors.ConfigError(f"config.model.subspace_dims={dims} gives {len(dims)} sizes, but the dataset has "
                             f"{len(categories)} categories ({', '.join(categories)}): give one size per category, "
                             f"e.g. --config.model.subspace_dims=({','.join(str(dims[0]) for _ in categories)})")
  config.model.subspace_dims = (dims[0],) * len(categories)


def check(config: ml_collections.ConfigDict, devices: int, train_tracks: int | None = None,
          categories=None) -> None:
  """Every config setting that cannot work stops here with one sentence naming its key,
  before any expensive work; `train_tracks` and `categories` (the dataset's) add the
  checks that need them, and fit the subspaces to the categories (fit_subspaces)."""
  from musicrep_jax.data import features  # pylint: disable=import-outside-toplevel
  for k in POSITIVE + NON_NEGATIVE:
    v = _key(config, k)
    if not math.isfinite(v) or v < 0 or (v == 0 and k in POSITIVE):
      raise errors.ConfigError(f"config.{k}={v} must be {'positive' if k in POSITIVE else 'zero or more'}")
  choices, tasks = _choices()
  for k, allowed in choices.items():
    if _key(config, k) not in allowed:
      raise errors.ConfigError(f"config.{k}={_key(config, k)!r} is unknown: choose one of {', '.join(allowed)}")
  unknown = [t for t in config.eval.tasks if t not in tasks]
  if unknown:
    hint = (" (a list on the command line is a tuple: --config.eval.tasks=\"('tagging','track_triplets')\")"
            if any("," in t for t in unknown) else "")
    raise errors.ConfigError(f"config.eval.tasks names {', '.join(map(repr, unknown))}: choose from "
                             f"{', '.join(tasks)}{hint}")
  from musicrep_jax import schedule  # pylint: disable=import-outside-toplevel
  if config.train.select_by not in schedule.SELECT_BY:
    raise errors.ConfigError(f"config.train.select_by={config.train.select_by!r} is unknown: choose one of "
                             f"{', '.join(schedule.SELECT_BY)}")
  cond = config.condition
  if not 0 < cond.label_fraction <= 1 or not 0 <= cond.drop_positive < 1:
    raise errors.ConfigError(f"config.condition.label_fraction={cond.label_fraction} must lie in (0, 1] and "
                             f"config.condition.drop_positive={cond.drop_positive} in [0, 1)")
  if config.train.plateau_factor <= 1:
    raise errors.ConfigError(f"config.train.plateau_factor={config.train.plateau_factor} must exceed 1 "
                             "(lr is divided by it)")
  a = config.audio
  if a.crop_seconds * features.SAMPLE_RATE < 2 * a.hop or a.n_mels > a.n_fft // 2 + 1:
    raise errors.ConfigError(
        f"config.audio gives {1 + int(a.crop_seconds * features.SAMPLE_RATE) // a.hop} frames of {a.n_mels} mel "
        f"bands from {a.n_fft // 2 + 1} FFT bins: the model needs at least 2 frames "
        "(crop_seconds * 16000 >= 2 * hop) and n_mels <= n_fft // 2 + 1")
  t = config.train
  if t.batch_size % devices:
    raise errors.ConfigError(f"config.train.batch_size={t.batch_size} is not divisible by the {devices} devices: "
                             f"use a multiple of {devices}")
  u = config.unlabelled
  if u.folder and (u.tracks < 2 or u.tracks % devices or u.temperature <= 0):
    raise errors.ConfigError(f"config.unlabelled.tracks={u.tracks} must be at least 2 and divisible by the {devices} "
                             f"devices, and config.unlabelled.temperature={u.temperature} positive")
  from musicrep_jax import objective  # pylint: disable=import-outside-toplevel
  if config.loss.sampler not in objective.SAMPLERS:
    raise errors.ConfigError(f"config.loss.sampler={config.loss.sampler!r} is unknown: choose one of "
                             f"{', '.join(objective.SAMPLERS)}")
  if config.loss.sampler == "paper" and config.loss.name not in objective.PAPER_SAMPLER:
    raise errors.ConfigError(f"config.loss.sampler='paper' exists for {', '.join(objective.PAPER_SAMPLER)}, "
                             f"not config.loss.name={config.loss.name!r}")
  if config.baseline not in ("", "random", "untrained", "logmel"):
    raise errors.ConfigError(f"config.baseline={config.baseline!r} is unknown: choose random, untrained or logmel")
  if config.model.subdense and not config.loss.disentangled:
    raise errors.ConfigError("config.model.subdense=True needs config.loss.disentangled=True")
  if not config.model.subspace_dims or any(d <= 0 for d in config.model.subspace_dims):
    raise errors.ConfigError(f"config.model.subspace_dims={tuple(config.model.subspace_dims)} needs one positive "
                             "size per category of the dataset")
  if categories is not None:
    fit_subspaces(config, categories)
  if config.model.features % 4:
    raise errors.ConfigError(f"config.model.features={config.model.features} must be divisible by 4 "
                             "(Inception branches)")
  if train_tracks is not None and train_tracks < t.batch_size:
    raise errors.ConfigError(f"config.train.batch_size={t.batch_size} exceeds the {train_tracks} training tracks")
