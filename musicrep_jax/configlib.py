"""The shared base of every config in configs/, and its presets.

`get_config(arg)` of a model file calls `base(arg)` and sets only what differs for that
model. The arg picks a preset: "" (default, sized for a 2-core CPU), "smoke" (tiny,
for tests) or "paper" (the paper's backbone and schedule, for GPU/TPU).
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

PRESETS = ("default", "smoke", "paper")


def base(arg: str | None = None) -> ml_collections.ConfigDict:
  preset = arg or "default"
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r} in --config=...:{preset}: choose one of {', '.join(PRESETS)}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.dataset = "synth_music"
  c.data_dir = "~/tensorflow_datasets"
  c.manual_dir = ""
  c.human_triplets = ""  # optional dim-sim style CSV for evaluation

  c.audio = dict(crop_seconds=3.0, n_fft=1024, hop=500, n_mels=64)
  c.model = dict(stem_features=32, features=64, blocks=4, hidden=128, subspace_dims=(32, 32, 32, 32),
                 head="dense", tag_weight_scale=1.0, dtype="float32")
  c.loss = dict(name="proxy", disentangled=False, margin=0.1, track_weight=0.0, temperature=0.11)
  # An "epoch" of the default preset is 48 steps (1,536 crops, about half the training
  # tracks), so that a model trains in about 8 minutes on 2 cores; 0 means a full pass.
  c.train = dict(batch_size=32, learning_rate=0.005, max_epochs=12, steps_per_epoch=48,
                 plateau_factor=5.0, plateau_patience=2, max_reductions=2, seed=0,
                 log_every_steps=10, checkpoint_every_steps=200, shuffle_buffer=512,
                 preemption_grace_s=30.0)
  c.eval = dict(batch_size=64, checkpoint="best", prototype_tracks=2000, max_tracks=0,
                triplets_per_category=4000)

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
                   checkpoint_every_steps=1000, shuffle_buffer=4096)
    c.eval.update(batch_size=256, prototype_tracks=20000)
  return c


def load(name: str, preset: str | None = None) -> ml_collections.ConfigDict:
  """The config of configs/<name>.py with a preset, as `--config=configs/<name>.py:<preset>` gives it."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", f"{name}.py")
  if not os.path.exists(path):
    raise ValueError(f"configs/{name}.py does not exist")
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
      raise ValueError(f"--override={a!r}: give section.key=value with an existing key, e.g. model.dtype=bfloat16")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    config[section][name] = value
  return config
