"""Beyond the paper: every valid label-conditioned triplet of the batch, each in its tag's
category subspace.

Run: python -m musicrep_jax.main --config=configs/triplet_all_dis.py[:smoke|:paper] --workdir=runs/triplet_all_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_all"
  config.loss.disentangled = True
  return config
