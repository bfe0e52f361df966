"""How many learning-rate cuts did each finished run need? (#26: the cost of a schedule)

Replays each run's plateau schedule (musicrep_jax.schedule.replay_run) on the figures its
metrics.jsonl logged, checks that the replay gives the lr the run logged after every
epoch, then replays it again with fewer cuts (max_reductions). A run with R cuts and the
same patience takes the same steps until its (R+1)-th cut would come and stops there, so
its selected checkpoint is the replay's best epoch: where that is the full run's best
epoch, the R-cut run's model, and so its test figures, are the full run's exactly. Where
it is not, the table gives the validation quality the R-cut run would have selected.

  python scripts/schedule_cuts.py docs/results/tuned_p24 [more bench --out folders]
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from musicrep_jax import schedule  # pylint: disable=wrong-import-position


def run_cuts(workdir: str) -> dict | None:
  """The replays of one finished run (None when it has no train_summary.json)."""
  if not os.path.exists(os.path.join(workdir, "train_summary.json")):
    return None
  t = json.load(open(os.path.join(workdir, "config.json")))["train"]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    epochs = [r for r in map(json.loads, f) if "val_loss" in r]
  full = schedule.replay_run(t, epochs)
  logged = [r["lr"] for r in epochs]
  if len(full["lrs"]) != len(logged) or not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(full["lrs"], logged)):
    return dict(run=os.path.basename(workdir.rstrip("/")), replayable=False)
  quality = [r.get("val_quality") for r in epochs]
  by_cuts = []
  for r in range(t["max_reductions"] + 1):
    c = schedule.replay_run(t, epochs, max_reductions=r)
    by_cuts.append(dict(cuts=r, epochs=c["last_epoch"] + 1, best_epoch=c["best_epoch"],
                        quality=quality[c["best_epoch"]], same=c["best_epoch"] == full["best_epoch"]))
  return dict(run=os.path.basename(workdir.rstrip("/")), replayable=True, epochs=len(epochs), best_epoch=full["best_epoch"],
              quality=quality[full["best_epoch"]], max_reductions=t["max_reductions"], by_cuts=by_cuts,
              needed=min(c["cuts"] for c in by_cuts if c["same"]))


def main(folders: list[str]) -> None:
  for folder in folders:
    found = [r for r in map(run_cuts, sorted(glob.glob(os.path.join(folder, "runs", "*", "")))) if r]
    rows = [r for r in found if r["replayable"]]
    print(f"\n{folder}: {len(found)} finished runs, {len(rows)} of them replayed (the replay gives every lr "
          "they logged)" + "".join(f"; {r['run']} is not (resumed with another schedule)" for r in found
                                   if not r["replayable"]) + "\n")
    if not rows:
      continue
    top = max(r["max_reductions"] for r in rows)
    print("| run | epochs | best epoch | cuts needed | " + " | ".join(f"{c} cuts: epochs, quality" for c in range(top + 1))
          + " |")
    print("|---|---|---|---|" + "---|" * (top + 1))
    for r in rows:
      cells = [f"{c['epochs']}, {c['quality']:.4f}{'' if c['same'] else ' (other)'}" for c in r["by_cuts"]]
      print(f"| {r['run']} | {r['epochs']} | {r['best_epoch']} | {r['needed']} | " + " | ".join(cells) + " |")
    need = max(r["needed"] for r in rows)
    full, cut = sum(r["epochs"] for r in rows), sum(r["by_cuts"][need]["epochs"] for r in rows)
    print(f"\nWith {need} cuts every run above selects the checkpoint it selected ({cut} epochs in all against "
          f"{full}: {cut / full:.0%}).")
    for c in range(need):
      loss = max(r["quality"] - r["by_cuts"][c]["quality"] for r in rows if c < len(r["by_cuts"]))
      print(f"With {c} cuts: {sum(r['by_cuts'][c]['epochs'] for r in rows if c < len(r['by_cuts'])) / full:.0%} of "
            f"the epochs; the selected validation quality is at most {loss:.4f} below the full run's.")


if __name__ == "__main__":
  if len(sys.argv) < 2:
    raise SystemExit(__doc__)
  main(sys.argv[1:])
