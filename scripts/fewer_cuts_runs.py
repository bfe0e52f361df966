"""The runs of a schedule with fewer learning-rate cuts, taken from longer runs (#26).

At each cut a run keeps the checkpoint that a schedule with fewer cuts and the same
patience would have stopped with (workdir/fewer_cuts/<k>/, musicrep_jax/train.py): that
schedule takes the same steps until its extra cut would come, and stops there. So each
finished run of --src that kept fewer_cuts/<K> gives, under --out, the run of the same
config with train.max_reductions=K, without training it again: config.json (K cuts),
tags.json, the metrics up to the epoch where it stops, train_summary.json (with
"derived_from"), the kept best/ and checkpoints/ (that run's best checkpoint, and its last
one with its schedule's final state), and the eval.json of `musicrep_jax.main --mode=eval`. Runs already in --out are left as they are; runs of --src
without fewer_cuts/<K> are listed (train them with `bench` into --out).

  python scripts/fewer_cuts_runs.py --src=docs/results/tuned_p48 --cuts=2 --out=docs/results/tuned_p48_2cuts

With --patience=P (more than --src's): the start of each run with patience P and --cuts
cuts, to be trained on by `bench` (it resumes them). Such a run takes the same steps as
the --src run until the --src run's first cut (until then it has had fewer bad epochs than
P), so it starts from the checkpoint that the --src run kept there (fewer_cuts/0) with the
schedule replayed at patience P. Nothing is evaluated; runs already in --out are left alone.

  python scripts/fewer_cuts_runs.py --src=docs/results/tuned_p48 --patience=96 --cuts=3 --out=docs/results/tuned_p96
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)
from musicrep_jax import checkpointing, schedule  # pylint: disable=wrong-import-position


def _overrides(config: dict) -> list[str]:
  """--config.<key>=<value> for every key of a run's config.json (but data_dir and empty strings)."""
  out = []
  for key, value in config.items():
    for k, v in (value.items() if isinstance(value, dict) else [(None, value)]):
      name = key if k is None else f"{key}.{k}"
      if name in ("data_dir", "preset") or v == "":
        continue
      out.append(f"--config.{name}={tuple(v) if isinstance(v, list) else v}")
  return out


def derive(src: str, dest: str, cuts: int, data_dir: str, model: str | None = None) -> str:
  """Writes dest from the run src (see the module doc); returns what was done, in words.
  model: the config's name (configs/<model>.py); by default src's folder name before -seed."""
  kept = os.path.join(src, "fewer_cuts", str(cuts))
  if os.path.exists(os.path.join(dest, "eval.json")):
    return "already there"
  if not os.path.isdir(kept):
    return f"no fewer_cuts/{cuts} (trained before runs kept them, or it stopped before cut {cuts + 1}): train it"
  config = json.load(open(os.path.join(src, "config.json")))
  ckpt = checkpointing.Checkpoints(kept)
  meta = ckpt.read_meta()  # the schedule's state when that run stops
  ckpt.close()
  t = config["train"]
  with open(os.path.join(src, "metrics.jsonl")) as f:
    lines = [json.loads(l) for l in f]
  epochs = [l for l in lines if "val_loss" in l]
  fewer = schedule.replay_run(t, epochs, max_reductions=cuts)
  if (epochs[fewer["best_epoch"]]["step"], fewer["last_epoch"] + 1) != (meta["best_step"], meta["epoch"]):
    raise SystemExit(f"{kept} holds the run stopped after epoch {meta['epoch'] - 1} with its best at step "
                     f"{meta['best_step']}, but the schedule with {cuts} cuts, replayed on {src}'s figures, stops "
                     f"after epoch {fewer['last_epoch']} with its best at step {epochs[fewer['best_epoch']]['step']}")
  if os.path.exists(dest):
    shutil.rmtree(dest)  # an unfinished derivation (no eval.json): made again
  shutil.copytree(kept, dest)
  config["train"]["max_reductions"] = cuts
  json.dump(config, open(os.path.join(dest, "config.json"), "w"), indent=2)
  shutil.copy(os.path.join(src, "tags.json"), dest)
  with open(os.path.join(dest, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines if l["step"] <= meta["steps_run"])
  summary = json.load(open(os.path.join(src, "train_summary.json")))
  summary.update({k: meta[k] for k in ("epoch", "schedule", "train_time_s", "epoch_times", "best_step", "steps_run")},
                 derived_from=f"{os.path.relpath(src, REPO)} (max_reductions {t['max_reductions']}): its "
                              f"fewer_cuts/{cuts}, kept at its cut {cuts + 1}")
  json.dump(summary, open(os.path.join(dest, "train_summary.json"), "w"), indent=2)
  model = model or os.path.basename(src.rstrip("/")).rsplit("-seed", 1)[0].split("@")[0]
  cmd = [sys.executable, "-m", "musicrep_jax.main", "--mode=eval", f"--workdir={dest}",
         f"--config={REPO}/configs/{model}.py:{config.get('preset', 'default')}", f"--config.data_dir={data_dir}",
         *_overrides(config)]
  with open(os.path.join(dest, "eval.log"), "w") as log:
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
  return f"best step {meta['best_step']}, stopped after epoch {meta['epoch'] - 1}: evaluated"


def longer_start(src: str, dest: str, patience: int, cuts: int) -> str:
  """Writes dest as the start of src's run with `patience` and `cuts` (see the module doc);
  returns what was done, in words."""
  from musicrep_jax import model as model_lib  # pylint: disable=import-outside-toplevel
  kept = os.path.join(src, "fewer_cuts", "0")
  if os.path.exists(dest):
    return "already there"
  if not os.path.isdir(kept):
    return "no fewer_cuts/0 (trained before runs kept them, or it never cut): train it"
  config, vocab = model_lib.read_workdir(src)
  t = config.train.to_dict()
  if patience <= t["plateau_patience"]:
    raise SystemExit(f"--patience={patience}: give more than {src}'s patience ({t['plateau_patience']})")
  with open(os.path.join(src, "metrics.jsonl")) as f:
    lines = [json.loads(l) for l in f]
  epochs = [l for l in lines if "val_loss" in l]
  ckpt = checkpointing.Checkpoints(kept)
  try:
    model = model_lib.Model(config, vocab)
    state, meta = ckpt.restore(model.abstract_state())
  finally:
    ckpt.close()
  first_cut = schedule.replay_run(t, epochs, max_reductions=0)
  if first_cut["last_epoch"] + 1 != meta["epoch"]:
    raise SystemExit(f"{kept} holds the run after epoch {meta['epoch'] - 1}, but {src}'s schedule, replayed on its "
                     f"figures, cuts first after epoch {first_cut['last_epoch']}")
  longer = schedule.replay_run(t, epochs[:meta["epoch"]], max_reductions=cuts, patience=patience)
  assert longer["state"]["reductions"] == 0 and not longer["stopped"]  # fewer than `patience` bad epochs so far
  staging = dest + ".partial"  # renamed when complete: a cut-off derivation is made again
  if os.path.exists(staging):
    shutil.rmtree(staging)
  shutil.copytree(os.path.join(kept, "best"), os.path.join(staging, "best"))  # its best so far, the same meta
  out = checkpointing.Checkpoints(staging)
  try:
    out.save(int(state["step"]), state, {**meta, "schedule": longer["state"],
                                         "derived_from": f"{os.path.relpath(src, REPO)} (patience "
                                                         f"{t['plateau_patience']}) until its first cut, epoch "
                                                         f"{meta['epoch'] - 1}: its fewer_cuts/0"})
    out.wait()
  finally:
    out.close()
  config.train.update(plateau_patience=patience, max_reductions=cuts)
  json.dump(json.loads(config.to_json_best_effort()), open(os.path.join(staging, "config.json"), "w"), indent=2)
  shutil.copy(os.path.join(src, "tags.json"), staging)
  kept_lines = [l for l in lines if l["step"] <= meta["steps_run"]]
  for line in kept_lines:  # each epoch's lr after it, as the longer patience sets it (not the cut src made)
    if "val_loss" in line:
      line["lr"] = longer["lrs"][line["epoch"]]
  with open(os.path.join(staging, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in kept_lines)
  os.rename(staging, dest)
  return f"starts after epoch {meta['epoch'] - 1} (step {int(state['step'])}): train it with bench"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--src", required=True, help="a bench --out folder whose runs kept fewer_cuts/")
  parser.add_argument("--cuts", type=int, required=True, help="the schedule's max_reductions")
  parser.add_argument("--patience", type=int, help="a longer patience: write the start of those runs (module doc)")
  parser.add_argument("--out", required=True, help="the bench --out folder of the schedule with --cuts cuts")
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  a = parser.parse_args()
  root = os.path.join(a.src, "runs")
  for name in sorted(os.listdir(root)):
    if os.path.exists(os.path.join(root, name, "eval.json")):
      src, dest = os.path.join(root, name), os.path.join(a.out, "runs", name)
      done = (longer_start(src, dest, a.patience, a.cuts) if a.patience else derive(src, dest, a.cuts, a.data_dir))
      print(f"{name}: {done}", flush=True)


if __name__ == "__main__":
  main()
