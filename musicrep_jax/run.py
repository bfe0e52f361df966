"""A run: set up devices, write config.json, train (or resume), evaluate, write eval.json."""

from __future__ import annotations

import json
import os
import time

import jax

from musicrep_jax import checkpointing
from musicrep_jax import configlib
from musicrep_jax import errors
from musicrep_jax import evaluate
from musicrep_jax import model as model_lib
from musicrep_jax import progress
from musicrep_jax import train


def _differences(old: dict, new: dict) -> list[str]:
  """'key: old -> new' for every number or string that differs between two nested dicts."""
  a, b = evaluate.flatten(old), evaluate.flatten(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def preflight(config, workdir: str, mode: str, vocab: dict | None = None) -> None:
  """Refuses, before anything is written (a dataset build included), a run that would
  mix with the run already in `workdir`: another model (the checkpoint's identity),
  another dataset, or (given the dataset's `vocab`) another tag vocabulary. The message
  names what differs."""
  folder = progress.path(workdir)
  if folder.exists() and not folder.is_dir():
    raise errors.ConfigError(f"--workdir={workdir} is a file: give a folder")
  if not folder.is_dir():
    return
  old_config = progress.read_json(folder / "config.json") or {}
  if old_config and old_config.get("dataset") != config.dataset and mode == "train":
    raise errors.ConfigError(f"{workdir} holds a run trained on config.dataset={old_config.get('dataset')!r}, not "
                             f"{config.dataset!r}: use a new --workdir (nothing was changed)")
  old_vocab = progress.read_json(folder / "tags.json")
  if vocab is not None and old_vocab is not None and old_vocab != vocab:
    diff = "; ".join(_differences(old_vocab, vocab)[:3])
    raise errors.ConfigError(f"{workdir} holds a run with another tag vocabulary ({diff}): the dataset differs; "
                             "use a new --workdir (nothing was changed)")
  meta = checkpointing.read_newest_meta(workdir)
  if meta is not None and meta.get("identity") != model_lib.identity(config):
    diff = "; ".join(_differences(meta.get("identity") or {}, model_lib.identity(config))[:4])
    raise errors.ConfigError(f"{workdir} holds a checkpoint of a different model ({diff}): use a new --workdir, "
                             "or the config it was trained with (nothing was changed)")


def _has_checkpoint(workdir: str) -> bool:
  """Does the workdir hold a training or best checkpoint? (read only: no folder is made)"""
  folder = progress.path(workdir)
  return any(p.name.isdigit() for sub in ("checkpoints", "best") if (folder / sub).is_dir()
             for p in (folder / sub).iterdir())


def writable(path: str) -> bool:
  return "://" in path or os.access(path, os.W_OK)  # an object store's permissions show on writing


def check_writable(workdir: str) -> None:
  """Refuses, before anything is written, a workdir that training cannot write: a
  read-only folder, or a new one whose nearest existing parent is read-only."""
  if "://" in workdir:
    return
  nearest = os.path.abspath(workdir)
  while not os.path.exists(nearest):
    nearest = os.path.dirname(nearest)
  if not os.access(nearest, os.W_OK | os.X_OK):
    where = "is read-only" if nearest == os.path.abspath(workdir) else f"cannot be created: {nearest} is read-only"
    raise errors.ConfigError(f"--workdir={workdir} {where} for this user: give a folder you can write (to go on "
                             "training someone's run, copy it first); nothing was written")


def run(config, workdir: str, mode: str = "train") -> dict:
  """Trains (mode="train") then evaluates; returns the evaluation results."""
  started = time.time()
  workdir = str(progress.path(workdir))  # a local folder or gs://...
  lead = jax.process_index() == 0
  train.check_config(config)  # before a dataset build, which can take minutes
  old_vocab = progress.read_json(progress.path(workdir) / "tags.json")
  if isinstance(old_vocab, dict) and old_vocab:  # the run's categories: its subspaces, for the checks below
    configlib.fit_subspaces(config, tuple(old_vocab))
  if not config.baseline:
    preflight(config, workdir, mode)
  if mode == "train" or config.baseline:
    check_writable(workdir)
  if mode == "eval" and not config.baseline and not _has_checkpoint(workdir):  # before anything is written
    raise checkpointing.CheckpointError(f"{workdir} holds no checkpoint: train first (--mode=train), or give the "
                                        "--workdir of a trained run (nothing was written)")
  builder = train.load_dataset(config)
  train.check_config(config, builder)
  if config.baseline:
    progress.path(workdir).mkdir(parents=True, exist_ok=True)
    return _baseline(config, builder, workdir, lead)
  setup = train.Setup(config, builder)
  preflight(config, workdir, mode, setup.vocab)
  if mode == "eval" and progress.path(workdir).is_dir() and not writable(workdir):  # evaluating someone's read-only run: print, write nothing
    progress.log(f"{workdir} is read-only: the evaluation is printed, not written", lead)
    lead_writes = False
  else:
    progress.path(workdir).mkdir(parents=True, exist_ok=True)
    lead_writes = lead
  if lead_writes:  # what `musicrep_jax.search` needs to use the model without the dataset
    progress.write_json(os.path.join(workdir, "tags.json"), setup.vocab)
  if mode == "train":
    if lead:
      progress.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    progress.log(f"training {config.loss.name}{' (disentangled)' if config.loss.disentangled else ''} on "
                 f"{config.dataset} with {jax.device_count()} {jax.devices()[0].platform} device(s) in {workdir}", lead)
    train.train(config, workdir, setup)
  trained = time.time()
  state, meta = setup.restore(workdir)
  progress.log(f"evaluating the {config.eval.checkpoint} checkpoint (step {int(state['step'])})", lead)
  results = evaluate.evaluate(setup, state, meta, workdir if lead_writes else None)
  done = time.time()
  results["eval_time_s"] = done - trained  # the restore and every task (train_time_s: the training)
  if lead_writes:
    progress.write_json(os.path.join(workdir, "eval.json"), results)
  progress.log(summary(results), lead)
  progress.log(f"time: {done - started:.0f} s in all, of which evaluation {done - trained:.0f} s "
               f"({100 * (done - trained) / max(done - started, 1e-9):.0f}%)", lead)
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
    sub = r.get("factor_triplet_acc_subspace/overall")
    parts.append(f"factor triplets {r['factor_triplet_acc/overall']:.3f}" + (f" (subspace {sub:.3f})" if sub else ""))
  if r.get("track_triplet_acc") is not None:
    parts.append(f"track triplets {r['track_triplet_acc']:.3f}")
  if "few_shot_roc_auc/5" in r:
    parts.append(f"held-out tags: 5-shot ROC-AUC {r['few_shot_roc_auc/5']:.3f}, recall@1 {r['open_recall_at_k/1']:.3f} "
                 f"(chance {r['open_recall_at_k_chance/1']:.3f})")
  if not parts and r.get("val_quality_best") is not None:
    parts.append(f"best validation quality {r['val_quality_best']:.4f} at epoch {r['epochs'] - 1}")
  return "eval: " + " | ".join(parts)
