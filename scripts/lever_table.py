"""The lever table of #30: for each lever folder (a `bench --out` of make run's config with
one lever), per seed and as mean ± sd over seeds:
- real-audio same-soundtrack precision@5 of the whole embedding (docs/REAL_AUDIO.md), and
  its paired difference from MFCC statistics on the same queries;
- tagging ROC-AUC on the test split of synth_music rendered with a held-out soundfont
  (`--soundfont`, a build of its own; the run is evaluated in a copy of its folder);
- synth_music 1.1's test ROC-AUC and R@1 (the run's eval.json; for a run trained on
  other renderings, its evaluation on the benchmark's own build).
Each run's figures are kept in RUN/levers.json, so a rerun only computes what is new.

  python scripts/lever_table.py --audio=~/game_music --soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2 \
      docs/results/levers/default docs/results/levers/augment [...] > docs/results/levers/table.md
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from musicrep_jax import progress
from musicrep_jax.tools import real_audio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def evaluate_copy(run: str, soundfont: str, data_dir: str) -> dict:
  """eval.json's tagging and retrieval figures of the run's best checkpoint on the test split
  of synth_music rendered with `soundfont` ("": the benchmark's own build), evaluated in a
  copy of the run's folder (the run's own eval.json is left as it is)."""
  config = json.load(open(os.path.join(run, "config.json")))
  with tempfile.TemporaryDirectory() as tmp:
    copy = os.path.join(tmp, "run")
    shutil.copytree(run, copy)
    os.remove(os.path.join(copy, "eval.json"))
    overrides = [f"--config.{k}.{kk}={v}" for k in ("loss", "model", "audio") for kk, v in config[k].items()
                 if not isinstance(v, (list, dict))]
    cmd = [sys.executable, "-m", "musicrep_jax.main", "--mode=eval", f"--workdir={copy}",
           f"--config={REPO}/configs/proxy_dis.py", f"--config.data_dir={data_dir}",
           f"--config.soundfont={soundfont}", "--config.eval.tasks=('tagging','retrieval')", *overrides]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.load(open(os.path.join(copy, "eval.json")))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("levers", nargs="+", help="bench --out folders, one per lever")
  parser.add_argument("--audio", required=True, help="the real-audio collection (scripts/fetch_game_music.sh)")
  parser.add_argument("--soundfont", required=True, help="the held-out soundfont")
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  args = parser.parse_args()
  tracks = groups = mfcc = None
  table = {}
  for lever in args.levers:
    runs = sorted(os.path.join(lever, "runs", d) for d in os.listdir(os.path.join(lever, "runs")))
    for run in runs:
      if not os.path.exists(os.path.join(run, "eval.json")):
        print(f"skipped {run}: not finished", file=sys.stderr)
        continue
      cache = os.path.join(run, "levers.json")
      fig = progress.read_json(cache) or {}
      ev = json.load(open(os.path.join(run, "eval.json")))
      if json.load(open(os.path.join(run, "config.json"))).get("soundfont") and "synth_roc_auc" not in fig:
        ev = evaluate_copy(run, "", args.data_dir)  # trained on other renderings: the benchmark's test split
      fig.setdefault("synth_roc_auc", ev["roc_auc"])
      fig.setdefault("synth_r1", ev["recall_at_k"]["1"])
      if "real_p5" not in fig:
        if tracks is None:  # decoded once, as the benchmark decodes them
          tracks, groups, _, _ = real_audio.decoded_collection(os.path.expanduser(args.audio))
          mfcc = real_audio.mfcc_retrieval(tracks, groups)
        whole = real_audio.rows_for_run(run, tracks, groups)[0][1]
        fig.update(real_p5=whole["precision_at_5"], real_p5_minus_mfcc=real_audio.paired_difference(whole, mfcc)[
            "difference"], mfcc_p5=mfcc["precision_at_5"])
      if "heldout_roc_auc" not in fig:
        fig["heldout_roc_auc"] = evaluate_copy(run, args.soundfont, args.data_dir)["roc_auc"]
      fig["soundfont"] = os.path.basename(args.soundfont)
      progress.write_json(cache, fig)
      table.setdefault(os.path.basename(os.path.normpath(lever)), []).append(fig)
      print(f"{run}: {fig}", file=sys.stderr, flush=True)
  keys = [("real_p5", "real-audio precision@5"), ("real_p5_minus_mfcc", "minus MFCC's (paired)"),
          ("heldout_roc_auc", "held-out soundfont ROC-AUC"), ("synth_roc_auc", "synth test ROC-AUC"),
          ("synth_r1", "synth test R@1")]
  print("| lever | seeds | " + " | ".join(k[1] for k in keys) + " |")
  print("|---|---|" + "---|" * len(keys))
  for lever, figs in table.items():
    cells = []
    for k, _ in keys:
      v = np.array([f[k] for f in figs])
      cells.append(f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}")
    print(f"| {lever} | {len(figs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
