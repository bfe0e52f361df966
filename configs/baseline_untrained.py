"""Baseline: the network with its random initial weights, not trained.

Evaluated, not trained (musicrep_jax/baselines.py); tags are scored by cosine to each
tag's mean training embedding.

Run: python -m musicrep_jax.main --config=configs/baseline_untrained.py[:smoke|:paper] --workdir=runs/baseline_untrained
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.baseline = "untrained"
  config.loss.name = "triplet"  # tagging by prototypes
  return config
