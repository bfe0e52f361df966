"""A run: set up devices, write config.json, train (or resume), evaluate, write eval.json."""

from __future__ import annotations

import json
import os

import jax

from musicrep_jax import checkpointing
from musicrep_jax import evaluate
from musicrep_jax import progress
from musicrep_jax import train
from musicrep_jax.data import corpora
from musicrep_jax.data import registry

USER_ERRORS = (train.TrainingError, registry.DatasetError, checkpointing.CheckpointError,
               corpora.CorpusError, ValueError, FileNotFoundError)


def run(config, workdir: str, mode: str = "train") -> dict:
  """Trains (mode="train") then evaluates; returns the evaluation results."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  train.check_config(config)  # before a dataset build, which can take minutes
  builder = train.load_dataset(config)
  train.check_config(config, builder)
  setup = train.Setup(config, builder)
  if lead:  # what `musicrep_jax.search` needs to use the model without the dataset
    progress.write_json(os.path.join(workdir, "tags.json"), setup.vocab)
  if mode == "train":
    if lead:
      progress.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    progress.log(f"training {config.loss.name}{' (disentangled)' if config.loss.disentangled else ''} on "
                 f"{config.dataset} with {jax.device_count()} {jax.devices()[0].platform} device(s) in {workdir}", lead)
    train.train(config, workdir, setup)
  state, meta = restore_for_eval(setup, workdir)
  progress.log(f"evaluating the {config.eval.checkpoint} checkpoint (step {int(state['step'])})", lead)
  results = evaluate.evaluate(setup, state, meta, workdir if lead else None)
  if lead:
    progress.write_json(os.path.join(workdir, "eval.json"), results)
    progress.log(summary(results), lead)
  return results


def restore_for_eval(setup, workdir: str):
  ckpt = checkpointing.Checkpoints(workdir)
  try:
    which = setup.config.eval.checkpoint
    meta = ckpt.read_meta(which) or ckpt.read_meta("latest")
    if meta is None:
      raise checkpointing.CheckpointError(f"{workdir} holds no checkpoint: train first (--mode=train)")
    if meta.get("identity") != train.model_identity(setup.config):
      raise checkpointing.CheckpointError(f"{workdir} holds a checkpoint of a different model: "
                                          "evaluate it with the config it was trained with")
    abstract = setup.abstract_state()
    restored = ckpt.restore(abstract, which) or ckpt.restore(abstract, "latest")
    state, _ = restored
    # The training-time figures come from the newest checkpoint, the weights from `which`.
    latest = ckpt.read_meta("latest")
    return state, latest
  finally:
    ckpt.close()


def summary(r: dict) -> str:
  rk = r["recall_at_k"]
  t = r["triplet_acc"]
  return (f"eval: ROC-AUC {r['roc_auc']:.3f} PR-AUC {r['pr_auc']:.3f} | recall@1/2/4/8 "
          f"{rk['1']:.3f}/{rk['2']:.3f}/{rk['4']:.3f}/{rk['8']:.3f} | tag triplets {t['complete']['overall']:.3f}"
          + (f" (subspace {t['subspace']['overall']:.3f})" if t["subspace"] else "")
          + (f" | factor triplets {r['factor_triplet_acc']['overall']:.3f}" if "factor_triplet_acc" in r else "")
          + (f" | track triplets {r['track_triplet_acc']:.3f}" if r.get("track_triplet_acc") is not None else ""))
