"""Beyond the paper: batch-hard triplets with Hermans et al.'s soft margin,
log(1 + exp((s_n - s_p) / T)) with T = 0.5 (squared euclidean distances of unit vectors).

Run: python -m musicrep_jax.main --config=configs/triplet_bh_soft.py[:smoke|:paper] --workdir=runs/triplet_bh_soft
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_bh"
  config.loss.disentangled = False
  config.loss.soft_margin = True
  config.loss.temperature = 0.5
  return config
