"""Beyond the paper: multi-similarity loss with its pair miner, per category subspace (positives
share a tag of the category).

Run: python -m musicrep_jax.main --config=configs/multi_similarity_dis.py[:smoke|:paper] --workdir=runs/multi_similarity_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "multi_similarity"
  config.loss.disentangled = True
  return config
