"""Paper row 8: disentangled classification: one sub-dense head per category, each
L2-normalised, with a normalised classifier per category.

Run: python -m musicrep_jax.main --config=configs/class_dis.py[:smoke|:paper] --workdir=runs/class_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy"
  config.loss.disentangled = True
  config.model.subdense = True
  return config
