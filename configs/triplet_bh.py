"""Beyond the paper: batch-hard triplet mining (Hermans et al., 2017) over the whole batch:
positives share a tag, negatives share none; cosine, margin config.loss.margin.

Run: python -m musicrep_jax.main --config=configs/triplet_bh.py[:smoke|:paper] --workdir=runs/triplet_bh
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet_bh"
  return config
