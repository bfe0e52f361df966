"""Does any tuned setting keep batch-hard triplets from collapsing? (#26)

For every tuning trial of a family (docs/results/tuning/FAMILY/trialN, whose best
checkpoints stay on the machine that ran the search), the validation split's song
embeddings at the trial's best checkpoint: their mean pairwise cosine (1: every track
points one way) and the validation quality curve the trial recorded, beside the
untrained network's embeddings. The test split is not read.

  python scripts/collapse.py [--families=triplet_bh_soft_dis,triplet_all_dis] [--data_dir=~/tensorflow_datasets]

Writes docs/results/tuning/collapse.json (each trial's figures, reused when rerun) and
collapse.png (left: validation quality per epoch, one line per trial; right: mean
pairwise cosine per trial against its setting, the untrained network as a line).
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import musicrep_jax  # pylint: disable=wrong-import-position

musicrep_jax.cli_environment()

_FAMILIES = flags.DEFINE_list("families", ["triplet_bh_soft_dis", "triplet_all_dis"], "Tuned families to measure.")
_DATA_DIR = flags.DEFINE_string("data_dir", os.path.expanduser("~/tensorflow_datasets"), "TFDS data_dir.")
_TUNING = flags.DEFINE_string("tuning", "docs/results/tuning", "The search's folder (tools/tune --out).")


def _setup(family: str, params: dict):
  from musicrep_jax import configlib, train  # pylint: disable=import-outside-toplevel
  config = configlib.load(family, "default")
  configlib.override(config, [f"{k}={v}" for k, v in params.items()])
  config.data_dir = _DATA_DIR.value
  return train.Setup(config, train.load_dataset(config))


def _validation_stats(setup, state) -> dict:
  from musicrep_jax import evaluate, metrics  # pylint: disable=import-outside-toplevel
  return metrics.embedding_stats(evaluate.Embeddings.of_split(setup, state, "validation").song)


def _curve(trial_dir: str) -> list[list[float]]:
  """[[epoch, validation quality]]: report.quality_curve, one line per epoch."""
  from musicrep_jax.tools import report  # pylint: disable=import-outside-toplevel
  return [[epoch, quality] for epoch, (_, quality) in enumerate(report.quality_curve(trial_dir))]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax's and TFDS's INFO lines
  out = os.path.join(_TUNING.value, "collapse.json")
  done = json.load(open(out)) if os.path.exists(out) else {}
  for family in _FAMILIES.value:
    trials = json.load(open(os.path.join(_TUNING.value, family, "trials.json")))
    rows = done.setdefault(family, {})
    for trial, record in sorted(trials.items(), key=lambda kv: int(kv[0])):
      key = f"trial{trial}"
      if key in rows:
        continue
      trial_dir = os.path.join(_TUNING.value, family, key)
      if not os.path.isdir(os.path.join(trial_dir, "best")):
        sys.exit(f"error: {trial_dir} has no best checkpoint on this machine (checkpoints are not committed): "
                 f"run scripts/collapse.py where the search ran, or drop {family} from --families")
      setup = _setup(family, record["params"])
      state, _ = setup.restore(trial_dir)
      rows[key] = {"params": record["params"], "step": int(state["step"]), **_validation_stats(setup, state),
                   "curve": _curve(trial_dir)}
      if "untrained" not in rows:
        rows["untrained"] = _validation_stats(setup, setup.init_state(0))
      with open(out + ".tmp", "w") as f:
        json.dump(done, f, indent=1)
      os.replace(out + ".tmp", out)
      print(f"{family} {key}: mean pairwise cosine {rows[key]['mean_pairwise_cosine']:.3f} "
            f"(untrained {rows['untrained']['mean_pairwise_cosine']:.3f}), step {rows[key]['step']}", flush=True)
  _plot(done, os.path.join(_TUNING.value, "collapse.png"))
  _table(done)


def _plot(done: dict, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  for i, (family, rows) in enumerate(done.items()):
    color = f"C{i}"
    trials = {k: v for k, v in rows.items() if k.startswith("trial")}
    for n, (key, r) in enumerate(sorted(trials.items())):
      e, q = zip(*r["curve"])
      left.plot(e, q, color=color, alpha=0.6, label=family if n == 0 else None)
    cos = [r["mean_pairwise_cosine"] for _, r in sorted(trials.items())]
    right.scatter([i] * len(cos), cos, color=color, label=family)
    right.hlines(rows["untrained"]["mean_pairwise_cosine"], i - 0.3, i + 0.3, colors="k",
                 label="untrained network" if i == 0 else None)
  left.set(xlabel="epoch", ylabel="validation quality (mean of R@1 and ROC-AUC)",
           title="every tuning trial's validation curve")
  right.set(xticks=range(len(done)), xticklabels=list(done), ylabel="mean pairwise cosine, validation",
            title="geometry at each trial's best checkpoint")
  left.legend(fontsize=8)
  right.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")


def _table(done: dict) -> None:
  print("| family | trial | setting | best step | best validation quality | mean pairwise cosine | norm CV |")
  print("|---|---|---|---|---|---|---|")
  for family, rows in done.items():
    for key, r in sorted(rows.items(), key=lambda kv: (kv[0] != "untrained", kv[0])):
      setting = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in r.get("params", {}).items()) or "-"
      best = f"{max(q for _, q in r['curve']):.3f}" if "curve" in r else "-"
      print(f"| {family} | {key} | {setting} | {r.get('step', 0)} | {best} | {r['mean_pairwise_cosine']:.3f} | "
            f"{r['norm_cv']:.3f} |")


if __name__ == "__main__":
  app.run(main)
