"""Beyond the paper: multi-label supervised contrastive loss per category subspace (positives
share a tag of the category).

Run: python -m musicrep_jax.main --config=configs/supcon_dis.py[:smoke|:paper] --workdir=runs/supcon_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "supcon"
  config.loss.disentangled = True
  config.loss.temperature = 0.1
  return config
