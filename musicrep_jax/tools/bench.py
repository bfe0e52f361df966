"""Trains and evaluates several configs and prints the paper's comparison tables.

  python -m musicrep_jax.tools.bench --preset=smoke --out=DIR [--configs=a,b,...] [--seeds=N]

Each run lives in DIR/runs/<config>-seed<k>/ and is reused when its eval.json exists
(an interrupted run resumes from its checkpoint). Writes DIR/table.md (laid out like
the paper's Tables 1, 3 and 4), DIR/table.csv and PNG plots.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from musicrep_jax import configlib
from musicrep_jax import errors

PAPER = ["triplet", "triplet_dis", "triplet_dis_track", "proxy", "proxy_dis", "class_vanilla", "class", "class_dis"]
EXTENDED = ["proxy_nca", "proxy_nca_dis", "triplet_bh", "triplet_bh_dis"]
REPO = configlib.REPO

_PRESET = flags.DEFINE_enum("preset", "default", ["smoke", "default", "paper"], "Config preset of every run.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_CONFIGS = flags.DEFINE_string("configs", "paper", "Comma-separated config names; 'paper' is the paper's "
                               "eight, 'extended' the eight plus Proxy-NCA and batch-hard rows.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Runs per config (seeds 0..N-1); tables give mean and std.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where the datasets live.")
_DATASET = flags.DEFINE_string("dataset", "", "Train and evaluate every run on this dataset instead of the config's "
                               "(e.g. synth_music:decorrelated, the control without correlated tags); runs go to "
                               "runs/<config>@<dataset>-seed<k>/.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.<key>=<value> for every run.")
flags.mark_flag_as_required("out")


def config_names(spec: str) -> list[str]:
  names = []
  for part in spec.split(","):
    names += {"paper": PAPER, "extended": PAPER + EXTENDED}.get(part, [part])
  for n in names:
    if not os.path.exists(os.path.join(configlib.CONFIGS_DIR, f"{n}.py")):
      raise errors.ConfigError(f"--configs names {n!r}, but configs/{n}.py does not exist")
  return names


def run_dir(out: str, name: str, seed: int) -> str:
  tag = f"@{_DATASET.value.replace(':', '-')}" if _DATASET.value else ""
  return os.path.join(out, "runs", f"{name}{tag}-seed{seed}")


def run_one(name: str, seed: int, out: str) -> dict:
  """eval.json of one run, training it first unless it is complete."""
  workdir = run_dir(out, name, seed)
  result = os.path.join(workdir, "eval.json")
  if os.path.exists(result):
    print(f"[bench] {name} seed {seed}: reusing {result}", flush=True)
  else:
    preset = "" if _PRESET.value == "default" else f":{_PRESET.value}"
    cmd = [sys.executable, "-m", "musicrep_jax.main", f"--config={os.path.join(REPO, 'configs', name)}.py{preset}",
           f"--workdir={workdir}", f"--config.data_dir={_DATA_DIR.value}", f"--config.train.seed={seed}",
           *([f"--config.dataset={_DATASET.value}"] if _DATASET.value else []),
           *[f"--config.{o}" for o in _OVERRIDES.value]]
    print(f"[bench] {name} seed {seed}: {' '.join(cmd[1:])}", flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode != 0:
      raise errors.UserError(f"{name} seed {seed} failed (exit {proc.returncode}); rerun to resume it")
    print(f"[bench] {name} seed {seed}: done in {time.time() - start:.0f} s", flush=True)
  with open(result) as f:
    return json.load(f)


def main(argv):
  del argv
  from musicrep_jax.tools import report  # pylint: disable=import-outside-toplevel
  out = os.path.abspath(os.path.expanduser(_OUT.value))
  os.makedirs(out, exist_ok=True)
  names = errors.exit_on_user_error(config_names, _CONFIGS.value)
  results = errors.exit_on_user_error(lambda: {n: [run_one(n, s, out) for s in range(_SEEDS.value)] for n in names})
  rows = report.summarise(results)
  command = "python -m musicrep_jax.tools.bench " + " ".join(a for a in sys.argv[1:])
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(report.markdown(rows, command, _SEEDS.value))
  with open(os.path.join(out, "table.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  report.plots(rows, {n: [run_dir(out, n, s) for s in range(_SEEDS.value)] for n in names}, out)
  print(open(os.path.join(out, "table.md")).read())
  print(f"[bench] wrote {out}/table.md, table.csv and plots")


if __name__ == "__main__":
  app.run(main)
