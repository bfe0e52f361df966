"""Compares two sets of runs (DIR/<config>/eval.json and metrics.jsonl) number by number.

  python scripts/compare_runs.py BEFORE_DIR AFTER_DIR [--tol=1e-6]

Used to show that a refactoring changed no result: the training loss curves must be
identical and every number of eval.json equal within --tol (float rounding of the
evaluation's normalisations). Exit status 1 when something differs.
"""

import json
import math
import os
import sys

from musicrep_jax.evaluate import WALL_TIMES, flatten


def _numbers(path):
  with open(path) as f:
    return {k: v for k, v in flatten(json.load(f)).items() if k not in WALL_TIMES}


def _losses(path):
  with open(path) as f:
    return [(l["step"], l["loss"]) for l in map(json.loads, f) if "loss" in l]


def main(before, after, tol=1e-6):
  bad = 0
  for name in sorted(os.listdir(before)):
    a_dir, b_dir = os.path.join(before, name), os.path.join(after, name)
    if not os.path.exists(os.path.join(b_dir, "eval.json")):
      print(f"{name}: missing in {after}")
      bad += 1
      continue
    same_curve = _losses(os.path.join(a_dir, "metrics.jsonl")) == _losses(os.path.join(b_dir, "metrics.jsonl"))
    a, b = _numbers(os.path.join(a_dir, "eval.json")), _numbers(os.path.join(b_dir, "eval.json"))
    diffs = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
             if not (a.get(k) == b.get(k) or (isinstance(a.get(k), float) and isinstance(b.get(k), float)
                                              and math.isclose(a[k], b[k], abs_tol=tol)))}
    worst = max((abs(x - y) for x, y in zip(a.values(), b.values())
                 if isinstance(x, float) and isinstance(y, float)), default=0.0)
    print(f"{name}: loss curve {'identical' if same_curve else 'DIFFERS'}; {len(a)} eval numbers, "
          f"{len(diffs)} differ beyond {tol:g}; largest difference {worst:.2e}")
    for k, (x, y) in diffs.items():
      print(f"    {k}: {x} -> {y}")
    bad += (not same_curve) + bool(diffs)
  return 1 if bad else 0


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if not a.startswith("--")]
  tol = float(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--tol=")), 1e-6))
  sys.exit(main(*args, tol=tol))
