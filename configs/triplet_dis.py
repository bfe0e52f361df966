"""Paper row 2: disentangled triplet loss, each triplet in its tag's category subspace.

Run: python -m musicrep_jax.main --config=configs/triplet_dis.py[:smoke|:paper] --workdir=runs/triplet_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet"
  config.loss.disentangled = True
  return config
