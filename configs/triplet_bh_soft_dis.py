"""Beyond the paper: batch-hard soft-margin triplets per category subspace.

Run: python -m musicrep_jax.main --config=configs/triplet_bh_soft_dis.py[:smoke|:paper] --workdir=runs/triplet_bh_soft_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_bh"
  config.loss.disentangled = True
  config.loss.soft_margin = True
  config.loss.temperature = 0.5
  return config
