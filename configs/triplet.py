"""Paper row 1: triplet loss (cosine, margin 0.1) on label-conditioned triplets.

Run: python -m musicrep_jax.main --config=configs/triplet.py[:smoke|:paper] --workdir=runs/triplet
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet"
  return config
