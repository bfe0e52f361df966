"""Paper row 5: disentangled proxy loss, each tag scored in its category subspace.

Run: python -m musicrep_jax.main --config=configs/proxy_dis.py[:smoke|:paper] --workdir=runs/proxy_dis
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy"
  config.loss.disentangled = True
  return config
