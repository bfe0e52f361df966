"""Paper row 1: triplet loss (cosine, margin 0.1) on label-conditioned triplets, with the paper's sampler: each triplet's anchor,
positive and negative embedded as separate inputs (3 per triplet, 5 with track
regularisation), for the paper's training-time comparison. `configs/triplet.py` forms the
triplets inside the batch instead (each excerpt embedded once).

Run: python -m musicrep_jax.main --config=configs/triplet_paper.py[:smoke|:paper] --workdir=runs/triplet_paper
"""

from musicrep_jax import configlib


def get_config(arg=None):
  config = configlib.base(arg)
  config.loss.name = "triplet"
  config.loss.sampler = "paper"
  return config
