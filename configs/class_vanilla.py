"""Paper row 6: vanilla classification (sigmoid on the unnormalised embedding, with bias).

Run: python -m musicrep_jax.main --config=configs/class_vanilla.py[:smoke|:paper] --workdir=runs/class_vanilla
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "vanilla"
  return config
