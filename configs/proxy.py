"""Paper row 4: proxy loss (sigmoid BCE, normalised embedding, unnormalised proxies).

Run: python -m musicrep_jax.main --config=configs/proxy.py[:smoke|:paper] --workdir=runs/proxy
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy"
  return config
