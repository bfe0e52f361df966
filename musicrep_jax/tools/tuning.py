"""The search spaces of tools/tune.py and the tuned settings it writes (no flags: bench
and tests import it).

Each family is a config of configs/ with its own hyperparameters: (config key, low,
high, log scale). TWINS maps the configs that are not tuned themselves to the family
whose setting they reuse.
"""

from __future__ import annotations

import json
import math
import os

LR = ("train.learning_rate", 5e-4, 2e-2, True)
# The families of the paper's disentangled models, the vanilla classifier, and today's
# metric-learning losses; each with the hyperparameters of its own loss.
FAMILIES = {
    "triplet_dis": [LR, ("loss.margin", 0.03, 0.6, True)],
    "triplet_all_dis": [LR, ("loss.margin", 0.03, 0.6, True)],
    "triplet_bh_soft_dis": [LR, ("loss.temperature", 0.05, 1.0, True)],
    "multi_similarity_dis": [LR, ("loss.ms_beta", 10.0, 100.0, True)],
    "supcon_dis": [LR, ("loss.temperature", 0.03, 0.5, True)],
    "proxy_nca_dis": [LR, ("loss.temperature", 0.03, 0.5, True)],
    "proxy_dis": [LR],
    "class_dis": [LR],
    "class_vanilla": [LR],
}
# The configs that reuse a tuned family's setting (the entangled twins, the track
# regulariser and the paper's sampler use the setting of their disentangled in-batch family).
TWINS = {
    "triplet": "triplet_dis", "triplet_dis_track": "triplet_dis", "triplet_paper": "triplet_dis",
    "triplet_dis_paper": "triplet_dis", "triplet_dis_track_paper": "triplet_dis",
    "triplet_all": "triplet_all_dis", "triplet_bh_soft": "triplet_bh_soft_dis",
    "multi_similarity": "multi_similarity_dis", "supcon": "supcon_dis", "proxy_nca": "proxy_nca_dis",
    "proxy": "proxy_dis", "class": "proxy_dis",
}


def trial_points(space: list, n: int) -> list[dict]:
  """The first n points of a scrambled Sobol sequence (seed 0), scaled to the space:
  [{key: value}] (log-uniform where the dimension is marked log)."""
  from scipy.stats import qmc  # pylint: disable=import-outside-toplevel
  import warnings  # pylint: disable=import-outside-toplevel
  with warnings.catch_warnings():  # a count that is not a power of 2 loses some balance, and says so
    warnings.simplefilter("ignore", UserWarning)
    unit = qmc.Sobol(d=len(space), scramble=True, seed=0).random(n)
  points = []
  for u in unit:
    p = {}
    for (key, low, high, log), x in zip(space, u):
      p[key] = float(math.exp(math.log(low) + x * (math.log(high) - math.log(low))) if log else low + x * (high - low))
      p[key] = float(f"{p[key]:.4g}")
    points.append(p)
  return points


def read_best(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def tuned_overrides(best_path: str, config_name: str) -> list[str]:
  """The `section.key=value` overrides of a config's tuned family (its own or its twin's),
  from a tune --out folder's best.json; [] for configs without one (the baselines)."""
  best = read_best(best_path)
  family = config_name if config_name in best else TWINS.get(config_name)
  if family is None or family not in best:
    return []
  return [f"{k}={v}" for k, v in best[family]["overrides"].items()]
