"""Beyond the paper: label-conditioned triplets over every valid triplet of the batch (not one
random triplet per anchor), averaged over the triplets with a positive loss.

Run: python -m musicrep_jax.main --config=configs/triplet_all.py[:smoke|:paper] --workdir=runs/triplet_all
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_all"
  config.loss.disentangled = False
  return config
