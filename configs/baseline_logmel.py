"""Baseline: hand-made features, the mean and standard deviation of each log-mel band.

Evaluated, not trained (musicrep_jax/baselines.py); tags are scored by cosine to each
tag's mean training embedding.

Run: python -m musicrep_jax.main --config=configs/baseline_logmel.py[:smoke|:paper] --workdir=runs/baseline_logmel
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.baseline = "logmel"
  config.loss.name = "triplet"  # tagging by prototypes
  return config
