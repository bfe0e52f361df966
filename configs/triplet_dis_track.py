"""Paper row 3: disentangled triplet loss plus 0.5 x a track-triplet regulariser.

Run: python -m musicrep_jax.main --config=configs/triplet_dis_track.py[:smoke|:paper] --workdir=runs/triplet_dis_track
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet"
  config.loss.disentangled = True
  config.loss.track_weight = 0.5
  return config
