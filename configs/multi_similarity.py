"""Beyond the paper: multi-similarity loss with its pair miner (Wang et al. 2019); positives
share a tag.

Run: python -m musicrep_jax.main --config=configs/multi_similarity.py[:smoke|:paper] --workdir=runs/multi_similarity
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "multi_similarity"
  config.loss.disentangled = False
  return config
