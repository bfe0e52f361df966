"""Baseline: random embeddings (random neighbours; chance on every triplet task).

Evaluated, not trained (musicrep_jax/baselines.py); tags are scored by cosine to each
tag's mean training embedding.

Run: python -m musicrep_jax.main --config=configs/baseline_random.py[:smoke|:paper] --workdir=runs/baseline_random
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.baseline = "random"
  config.loss.name = "triplet"  # tagging by prototypes
  return config
