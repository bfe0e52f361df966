"""Beyond the paper: multi-label supervised contrastive loss (Khosla et al. 2020); positives
share a tag.

Run: python -m musicrep_jax.main --config=configs/supcon.py[:smoke|:paper] --workdir=runs/supcon
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "supcon"
  config.loss.disentangled = False
  config.loss.temperature = 0.1
  return config
