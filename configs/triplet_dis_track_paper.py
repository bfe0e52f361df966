"""Paper row 3: disentangled triplet loss plus 0.5 x a track-triplet regulariser, with the paper's sampler: each triplet's anchor,
positive and negative embedded as separate inputs (3 per triplet, 5 with track
regularisation), for the paper's training-time comparison. `configs/triplet_dis_track.py` forms the
triplets inside the batch instead (each excerpt embedded once).

Run: python -m musicrep_jax.main --config=configs/triplet_dis_track_paper.py[:smoke|:paper] --workdir=runs/triplet_dis_track_paper
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet"
  config.loss.sampler = "paper"
  config.loss.disentangled = True
  config.loss.track_weight = 0.5
  return config
