"""Beyond the paper: disentangled Proxy-NCA, positives and negatives restricted to one
category's tags, in that category's subspace.

Run: python -m musicrep_jax.main --config=configs/proxy_nca_dis.py[:smoke|:paper] --workdir=runs/proxy_nca_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy_nca"
  config.loss.disentangled = True
  return config
