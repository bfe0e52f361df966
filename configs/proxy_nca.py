"""Beyond the paper: Proxy-NCA (Movshovitz-Attias et al., 2017) for multi-label data, low
temperature as in ProxyNCA++.

Run: python -m musicrep_jax.main --config=configs/proxy_nca.py[:smoke|:paper] --workdir=runs/proxy_nca
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy_nca"
  return config
