"""A run: set up devices, write config.json, train (or resume), evaluate, write eval.json."""

from __future__ import annotations

import json
import os

import jax

from musicrep_jax import evaluate
from musicrep_jax import progress
from musicrep_jax import train


def run(config, workdir: str, mode: str = "train") -> dict:
  """Trains (mode="train") then evaluates; returns the evaluation results."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  train.check_config(config)  # before a dataset build, which can take minutes
  builder = train.load_dataset(config)
  train.check_config(config, builder)
  if config.baseline:
    return _baseline(config, builder, workdir, lead)
  setup = train.Setup(config, builder)
  if lead:  # what `musicrep_jax.search` needs to use the model without the dataset
    progress.write_json(os.path.join(workdir, "tags.json"), setup.vocab)
  if mode == "train":
    if lead:
      progress.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    progress.log(f"training {config.loss.name}{' (disentangled)' if config.loss.disentangled else ''} on "
                 f"{config.dataset} with {jax.device_count()} {jax.devices()[0].platform} device(s) in {workdir}", lead)
    train.train(config, workdir, setup)
  state, meta = setup.restore(workdir)
  progress.log(f"evaluating the {config.eval.checkpoint} checkpoint (step {int(state['step'])})", lead)
  results = evaluate.evaluate(setup, state, meta, workdir if lead else None)
  if lead:
    progress.write_json(os.path.join(workdir, "eval.json"), results)
    progress.log(summary(results), lead)
  return results


def _baseline(config, builder, workdir: str, lead: bool) -> dict:
  """Evaluates a baseline of baselines.py (nothing to train) and writes eval.json."""
  from musicrep_jax import baselines  # pylint: disable=import-outside-toplevel
  setup = baselines.Baseline(config, builder)
  progress.log(f"evaluating the {config.baseline} baseline on {config.dataset}", lead)
  results = evaluate.evaluate(setup, setup.state(), {}, workdir if lead else None)
  if lead:
    progress.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    progress.write_json(os.path.join(workdir, "eval.json"), results)
    progress.log(summary(results), lead)
  return results


def summary(results: dict) -> str:
  """The run's one-line result, from the names of evaluate.flatten."""
  r = evaluate.flatten(results)
  parts = []
  if "roc_auc" in r:
    parts.append(f"ROC-AUC {r['roc_auc']:.3f} PR-AUC {r['pr_auc']:.3f}")
  if "recall_at_k/1" in r:
    parts.append("recall@1/2/4/8 " + "/".join(f"{r[f'recall_at_k/{k}']:.3f}" for k in (1, 2, 4, 8)))
  if "triplet_acc/complete/overall" in r:
    sub = r.get("triplet_acc/subspace/overall")
    parts.append(f"tag triplets {r['triplet_acc/complete/overall']:.3f}" + (f" (subspace {sub:.3f})" if sub else ""))
  if "factor_triplet_acc/overall" in r:
    parts.append(f"factor triplets {r['factor_triplet_acc/overall']:.3f}")
  if r.get("track_triplet_acc") is not None:
    parts.append(f"track triplets {r['track_triplet_acc']:.3f}")
  return "eval: " + " | ".join(parts)
