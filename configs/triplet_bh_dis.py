"""Beyond the paper: batch-hard triplet mining per category, in each category's subspace.

Run: python -m musicrep_jax.main --config=configs/triplet_bh_dis.py[:smoke|:paper] --workdir=runs/triplet_bh_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_bh"
  config.loss.disentangled = True
  return config
