"""Paper row 7: normalised classification (no bias). The paper notes it equals the proxy
loss (row 4); the two differ only in name, as in the paper.

Run: python -m musicrep_jax.main --config=configs/class.py[:smoke|:paper] --workdir=runs/class
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "proxy"
  return config
