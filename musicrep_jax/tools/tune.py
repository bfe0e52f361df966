"""An equal tuning budget for every loss family, on validation data only.

  python -m musicrep_jax.tools.tune --out=docs/results/tuning [--families=all] [--data_dir=DIR]

Every family gets the same number of trials (--trials, 8) and the same schedule of
budgets: successive halving with two rungs. All trials train for --rungs[0] epochs; the
--keep best (by their best validation quality, `evaluate.validation_quality`) go on to
--rungs[1] epochs; the best of those is the family's setting. Every trial is stopped and
selected by the common rule (config.train.select_by="quality") and evaluates only its
training time: the test split is never read.

The trial points are the first --trials points of a scrambled Sobol sequence (scipy, seed
0) over the family's own hyperparameters (`FAMILIES`; a log scale where marked): at 8
trials a model-based sampler would still be in its random start-up phase (Optuna's TPE
samples its first 10 trials at random), and a low-discrepancy design covers the space
more evenly than random draws.

Resumable: trial k of a family trains in OUT/<family>/trial<k>/ (checkpoints there are
not committed), and OUT/<family>/trials.json records every finished trial and rung. A
rerun skips what is recorded and resumes an interrupted trial from its checkpoint (or
retrains it when only its small files were kept). Writes OUT/best.json (each family's
setting as config overrides) and OUT/summary.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import musicrep_jax

musicrep_jax.cli_environment()

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from musicrep_jax import configlib
from musicrep_jax import errors
from musicrep_jax.tools.tuning import FAMILIES, read_best, trial_points

_OUT = flags.DEFINE_string("out", None, "Output folder (the search records and the trials' workdirs).")
_FAMILIES = flags.DEFINE_string("families", "all", f"Comma-separated families, or 'all': {', '.join(FAMILIES)}.")
_PRESET = flags.DEFINE_enum("preset", "default", ["smoke", "default", "paper"], "Config preset of every trial.")
_TRIALS = flags.DEFINE_integer("trials", 8, "Trials per family (the same for every family).")
_RUNGS = flags.DEFINE_list("rungs", ["8", "24"], "Epoch budgets of the two rungs of successive halving.")
_KEEP = flags.DEFINE_integer("keep", 3, "Trials promoted from the first rung to the second.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where the datasets live.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra section.key=value for every trial.")
flags.mark_flag_as_required("out")


def family_names(spec: str) -> list[str]:
  names = list(FAMILIES) if spec == "all" else [n.strip() for n in spec.split(",") if n.strip()]
  unknown = [n for n in names if n not in FAMILIES]
  if unknown:
    raise errors.ConfigError(f"--families names {', '.join(unknown)}: choose from {', '.join(FAMILIES)} or 'all'")
  return names


def read_records(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return {int(k): v for k, v in json.load(f).items()}
  except (ValueError, OSError) as e:
    raise errors.UserError(f"{path} is not a search record ({e}): restore it from git or remove it to retrain") from e


def write_records(path: str, records: dict) -> None:
  from musicrep_jax import progress  # pylint: disable=import-outside-toplevel
  progress.write_json(path, {str(k): v for k, v in sorted(records.items())})


def trial_figures(workdir: str) -> dict:
  """What a finished (or failed) trial's workdir says: best validation quality, epochs, cost."""
  with open(os.path.join(workdir, "train_summary.json")) as f:
    summary = json.load(f)
  sched = summary["schedule"]
  flops = summary.get("flops_per_step") or 0.0
  return {"val_quality_best": -sched["best"] if math.isfinite(sched["best"]) else None,
          "best_epoch": sched["best_epoch"], "epochs_run": summary["epoch"], "stopped": bool(sched["stop"]),
          "steps_run": summary["steps_run"], "gflop": flops * summary["steps_run"] / 1e9,
          "train_time_s": summary["train_time_s"]}


def run_trial(family: str, k: int, params: dict, epochs: int, out: str) -> dict:
  """Trains trial k of a family up to `epochs` epochs (resuming its workdir) and returns its figures."""
  from musicrep_jax import run  # pylint: disable=import-outside-toplevel
  workdir = os.path.join(out, family, f"trial{k}")
  preset = None if _PRESET.value == "default" else _PRESET.value
  config = configlib.load(family, preset)
  overrides = [f"{key}={value}" for key, value in params.items()] + list(_OVERRIDES.value)
  config = configlib.override(config, overrides)
  config.train.max_epochs, config.train.select_by = epochs, "quality"
  config.data_dir = _DATA_DIR.value
  config.eval.tasks = ("training_time",)  # the search reads no test data
  print(f"[tune] {family} trial {k} to epoch {epochs}: {params}", flush=True)
  start = time.time()
  try:
    run.run(config, workdir)
  except run.train.TrainingError as e:  # a diverged setting is a result of the search, not a crash
    print(f"[tune] {family} trial {k} failed: {e}", flush=True)
    return {"failed": str(e), "val_quality_best": None}
  figures = trial_figures(workdir)
  print(f"[tune] {family} trial {k}: best validation quality {figures['val_quality_best']:.4f} at epoch "
        f"{figures['best_epoch']} ({time.time() - start:.0f} s)", flush=True)
  return figures


def rank(records: dict, trials: list[int], rung: int) -> list[int]:
  """The trials of a rung, best validation quality first (failed trials last)."""
  def key(k):
    q = records[k]["rungs"].get(str(rung), {}).get("val_quality_best")
    return -(q if q is not None else -math.inf)
  return sorted(trials, key=key)


def tune_family(family: str, out: str) -> dict:
  """Runs (or resumes) the search of one family; returns its record of every trial."""
  path = os.path.join(out, family, "trials.json")
  records = read_records(path)
  points = trial_points(FAMILIES[family], _TRIALS.value)
  rungs = [int(r) for r in _RUNGS.value]
  for k, p in enumerate(points):
    rec = records.setdefault(k, {"params": p, "rungs": {}})
    if rec["params"] != p:
      raise errors.UserError(f"{path} records trial {k} with {rec['params']}, not {p}: the search space changed; "
                             "use a new --out")
  alive = list(range(len(points)))
  for r, epochs in enumerate(rungs):
    for k in alive:
      done = records[k]["rungs"].get(str(r))
      if done is None:
        earlier = records[k]["rungs"].get(str(r - 1), {})
        if earlier.get("failed") or earlier.get("stopped"):  # nothing more to train: it carries over
          done = earlier
        else:
          done = run_trial(family, k, points[k], epochs, out)
        records[k]["rungs"][str(r)] = done
        write_records(path, records)
    if r + 1 < len(rungs):
      alive = rank(records, alive, r)[:_KEEP.value]
  return records


def best_setting(records: dict, last_rung: int) -> tuple[int, dict]:
  finished = [k for k, rec in records.items() if str(last_rung) in rec["rungs"]]
  k = rank(records, finished, last_rung)[0]
  return k, records[k]


def summary_markdown(all_records: dict[str, dict], last_rung: int) -> str:
  lines = ["| family | trials | best trial | setting | best validation quality | GFLOP of the search | "
           "train s of the search |", "|---|---|---|---|---|---|---|"]
  for family, records in all_records.items():
    k, rec = best_setting(records, last_rung)
    # A trial's figures are cumulative over its rungs: its cost is that of its last rung.
    last = [r["rungs"][max(r["rungs"], key=int)] for r in records.values() if r["rungs"]]
    gflop = sum(v.get("gflop", 0.0) for v in last)
    secs = sum(v.get("train_time_s", 0.0) for v in last)
    q = rec["rungs"][str(last_rung)].get("val_quality_best")
    setting = ", ".join(f"{key.split('.')[-1]}={v:g}" for key, v in rec["params"].items())
    lines.append(f"| {family} | {len(records)} | {k} | {setting} | {q:.4f} | {gflop:.0f} | {secs:.0f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  out = os.path.abspath(os.path.expanduser(_OUT.value))
  names = errors.exit_on_user_error(family_names, _FAMILIES.value)
  rungs = _RUNGS.value
  if len(rungs) != 2 or not all(r.isdigit() and int(r) > 0 for r in rungs) or int(rungs[0]) > int(rungs[1]):
    errors.die(f"--rungs={','.join(rungs)}: give two epoch budgets, the first at most the second (e.g. 8,24)", 2)
  from musicrep_jax import run  # pylint: disable=import-outside-toplevel
  all_records = {}
  try:
    for family in names:
      all_records[family] = errors.exit_on_user_error(tune_family, family, out)
      write_summary(out, all_records)  # after each family: a search stopped later keeps what is done
  except run.train.Preempted as e:
    print(f"[tune] stopped ({e}); rerun the same command to resume", flush=True)
    sys.exit(e.status)
  print((open(os.path.join(out, "summary.md")).read()))


def write_summary(out: str, all_records: dict[str, dict]) -> None:
  """OUT/best.json (each finished family's setting, merged with those already there) and
  OUT/summary.md (every family recorded in OUT)."""
  from musicrep_jax import progress  # pylint: disable=import-outside-toplevel
  best_path = os.path.join(out, "best.json")
  best = read_best(best_path)
  for family, records in all_records.items():
    k, rec = best_setting(records, 1)
    best[family] = {"trial": k, "overrides": rec["params"],
                    "val_quality_best": rec["rungs"]["1"].get("val_quality_best")}
  progress.write_json(best_path, dict(sorted(best.items())))
  recorded = {f: read_records(os.path.join(out, f, "trials.json")) for f in FAMILIES if f in best}
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(f"Trials per family: {_TRIALS.value}; rungs {','.join(_RUNGS.value)} epochs, the best {_KEEP.value} "
            f"promoted; preset {_PRESET.value}; selection by validation quality.\n\n" + summary_markdown(recorded, 1))


if __name__ == "__main__":
  app.run(main)
