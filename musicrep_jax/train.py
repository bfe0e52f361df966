"""The training loop: one jitted, sharded update over a ("data",) device mesh."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from musicrep_jax import checkpointing
from musicrep_jax import frontend
from musicrep_jax import input_pipeline
from musicrep_jax import models
from musicrep_jax import objective as objective_lib
from musicrep_jax import progress
from musicrep_jax import schedule
from musicrep_jax.data import features
from musicrep_jax.data import registry


class TrainingError(RuntimeError):
  """Training cannot go on; the message says why and what to do."""


class Setup:
  """Everything a run derives from its config and dataset: model, objective, mesh, fns."""

  def __init__(self, config: ml_collections.ConfigDict, builder, vocab: dict | None = None):
    """`builder` may be None for inference only, with `vocab` ({category: tags}) given."""
    self.config = config
    self.builder = builder
    self.vocab = vocab or features.vocab_from_info(builder.info)
    vocab = self.vocab
    self.tag_names = features.tag_names(vocab)
    self.tag_category = features.tag_categories(vocab)
    m = config.model
    self.dim_category = np.repeat(np.arange(len(features.CATEGORIES)), m.subspace_dims)  # [D]
    self.model = models.MusicEncoder(
        num_tags=len(self.tag_names), subspace_dims=tuple(m.subspace_dims), head=m.head,
        tag_weight_scale=m.tag_weight_scale, stem_features=m.stem_features, features=m.features,
        blocks=m.blocks, hidden=m.hidden, dtype=jnp.dtype(m.dtype))
    self.objective = objective_lib.Objective(config.loss, m.subspace_dims, self.tag_category)
    self.crops = objective_lib.crops_per_track(config.loss)
    self.crop_len = int(round(config.audio.crop_seconds * features.SAMPLE_RATE))
    self.log_mel = functools.partial(frontend.log_mel, sample_rate=features.SAMPLE_RATE, n_fft=config.audio.n_fft,
                                     hop=config.audio.hop, n_mels=config.audio.n_mels)
    self.mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    self.replicated = NamedSharding(self.mesh, P())
    self.data_sharded = NamedSharding(self.mesh, P("data"))
    self.tx = optax.scale_by_adam()

  def _init(self, rng) -> dict:
    variables = self.model.init(rng, self.log_mel(jnp.zeros((2, self.crop_len), jnp.int16)), train=False)
    params = variables["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params, "batch_stats": variables["batch_stats"],
            "opt_state": self.tx.init(params)}

  def init_state(self, seed: int) -> dict:
    """A fresh train state, replicated over the mesh (one compiled program, not op by op)."""
    return jax.jit(self._init, out_shardings=self.replicated)(jax.random.key(seed))

  def abstract_state(self) -> dict:
    """Shapes, dtypes and shardings of the train state, computed without running anything."""
    shapes = jax.eval_shape(self._init, jax.random.key(0))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), shapes)

  def embed(self, params, batch_stats, audio, train=False):
    """int16 audio [N, L] -> embeddings [N, D] (and new batch stats when training)."""
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
      return self.model.apply(variables, self.log_mel(audio), train=True, mutable=["batch_stats"])
    return self.model.apply(variables, self.log_mel(audio), train=False)

  def loss(self, params, batch_stats, batch, rng, train):
    audio = batch["audio"]  # [B, K, L]
    b, k, l = audio.shape
    out = self.embed(params, batch_stats, audio.reshape(b * k, l), train=train)
    emb, new_stats = (out[0], out[1]["batch_stats"]) if train else (out, batch_stats)
    loss, aux = self.objective(rng, emb.reshape(b, k, -1), params["tag_weights"], params["tag_bias"],
                               batch["labels"])
    return loss, (aux, new_stats)

  def update(self, state, batch, lr, rng):
    """One Adam step on a global batch; the state is donated and stays replicated."""
    rng = jax.random.fold_in(rng, state["step"])
    grad_fn = jax.value_and_grad(self.loss, has_aux=True)
    (loss, (aux, stats)), grads = grad_fn(state["params"], state["batch_stats"], batch, rng, True)
    updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], jax.tree.map(lambda u: -lr * u, updates))
    new = {"step": state["step"] + 1, "params": params, "batch_stats": stats, "opt_state": opt_state}
    return new, {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}

  @functools.cached_property
  def update_fn(self):
    return jax.jit(self.update, donate_argnums=(0,),
                   in_shardings=(self.replicated, self.data_sharded, None, None),
                   out_shardings=(self.replicated, self.replicated))

  @functools.cached_property
  def eval_loss_fn(self):
    return jax.jit(lambda s, b, rng: self.loss(s["params"], s["batch_stats"], b, rng, False)[0],
                   in_shardings=(self.replicated, self.data_sharded, None))

  @functools.cached_property
  def embed_fn(self):
    """jitted (state, int16 audio [N, L]) -> embeddings [N, D] for evaluation."""
    return jax.jit(lambda s, audio: self.embed(s["params"], s["batch_stats"], audio))

  def global_batch(self, host_batch: dict) -> dict:
    return {k: jax.make_array_from_process_local_data(self.data_sharded, v) for k, v in host_batch.items()}

  @functools.cache  # pylint: disable=method-cache-max-size-none
  def source(self, split: str) -> input_pipeline.TrackSource:
    return input_pipeline.TrackSource(self.builder, split, jax.process_index(), jax.process_count())

  def epoch_data(self, split: str, epoch: int, seed: int, batch_size: int):
    return input_pipeline.train_dataset(
        self.source(split), batch_size=batch_size // jax.process_count(), crop_len=self.crop_len,
        crops=self.crops, seed=seed, epoch=epoch, shuffle_buffer=self.config.train.shuffle_buffer)


POSITIVE = ("train.batch_size", "train.learning_rate", "train.max_epochs", "train.log_every_steps",
            "train.checkpoint_every_steps", "train.shuffle_buffer", "train.preemption_grace_s",
            "audio.crop_seconds", "audio.n_fft", "audio.hop", "audio.n_mels", "model.stem_features",
            "model.features", "model.blocks", "model.hidden", "loss.temperature", "eval.batch_size",
            "eval.prototype_tracks")
NON_NEGATIVE = ("train.steps_per_epoch", "train.plateau_patience", "train.max_reductions", "loss.margin",
                "loss.track_weight", "eval.max_tracks", "eval.triplets_per_category")
CHOICES = {"loss.name": objective_lib.NAMES, "model.head": ("dense", "subdense"),
           "model.dtype": ("float32", "bfloat16"), "eval.checkpoint": ("best", "latest")}


def _key(config, dotted: str):
  section, key = dotted.split(".")
  return config[section][key]


def check_config(config, builder=None) -> None:
  """Impossible settings stop the run before any expensive work (with `builder`, also
  the settings that depend on the dataset)."""
  for k in POSITIVE + NON_NEGATIVE:
    v = _key(config, k)
    if not math.isfinite(v) or v < 0 or (v == 0 and k in POSITIVE):
      raise TrainingError(f"config.{k}={v} must be {'positive' if k in POSITIVE else 'zero or more'}")
  for k, choices in CHOICES.items():
    if _key(config, k) not in choices:
      raise TrainingError(f"config.{k}={_key(config, k)!r} is unknown: choose one of {', '.join(choices)}")
  if config.train.plateau_factor <= 1:
    raise TrainingError(f"config.train.plateau_factor={config.train.plateau_factor} must exceed 1 (lr is divided by it)")
  a = config.audio
  if a.crop_seconds * features.SAMPLE_RATE < 2 * a.hop or a.n_mels > a.n_fft // 2 + 1:
    raise TrainingError(f"config.audio gives {1 + int(a.crop_seconds * features.SAMPLE_RATE) // a.hop} frames of "
                        f"{a.n_mels} mel bands from {a.n_fft // 2 + 1} FFT bins: the model needs at least 2 frames "
                        "(crop_seconds * 16000 >= 2 * hop) and n_mels <= n_fft // 2 + 1")
  n_dev = jax.device_count()
  t = config.train
  if t.batch_size % n_dev:
    raise TrainingError(f"config.train.batch_size={t.batch_size} is not divisible by the {n_dev} devices: "
                        f"use a multiple of {n_dev}")
  if config.model.head == "subdense" and not config.loss.disentangled:
    raise TrainingError("config.model.head='subdense' needs config.loss.disentangled=True")
  if any(d <= 0 for d in config.model.subspace_dims) or len(config.model.subspace_dims) != len(features.CATEGORIES):
    raise TrainingError(f"config.model.subspace_dims={tuple(config.model.subspace_dims)} needs one positive "
                        f"size per category ({', '.join(features.CATEGORIES)})")
  if config.model.features % 4:
    raise TrainingError(f"config.model.features={config.model.features} must be divisible by 4 (Inception branches)")
  if builder is not None and builder.info.splits["train"].num_examples < t.batch_size:
    raise TrainingError(f"config.train.batch_size={t.batch_size} exceeds the "
                        f"{builder.info.splits['train'].num_examples} training tracks")


def model_identity(config) -> dict:
  """What a checkpoint must match to be resumed or evaluated."""
  ident = {"loss": config.loss.to_dict(), "model": config.model.to_dict(), "audio": config.audio.to_dict()}
  return json.loads(json.dumps(ident))  # as it reads back from checkpoint metadata


def load_dataset(config):
  return registry.load(config.dataset, config.data_dir, manual_dir=config.manual_dir)


def validation_loss(setup: Setup, state, seed: int) -> float:
  n_val = setup.builder.info.splits["validation"].num_examples
  batch = min(setup.config.train.batch_size, n_val) // jax.device_count() * jax.device_count()
  total, count = 0.0, 0
  for i, b in enumerate(setup.epoch_data("validation", 0, seed, batch).as_numpy_iterator()):
    total += float(setup.eval_loss_fn(state, setup.global_batch(b), jax.random.key(i)))
    count += 1
  return total / max(count, 1)


class Preempted(Exception):
  """SIGTERM arrived: the state was saved and the run stops; rerunning resumes it."""


def _on_sigterm(stop: dict, grace_s: float, lead: bool) -> None:
  """Asks the loop to save and stop after the current step, and ends the process after
  `grace_s` seconds if that has not happened (during a long compilation, say): the
  newest complete checkpoint is then the one a rerun resumes from."""
  if stop["signal"] is not None:
    return
  stop["signal"] = time.time()

  def expire():
    progress.log(f"SIGTERM: no checkpoint completed within config.train.preemption_grace_s={grace_s:g} s; "
                 "a rerun resumes from the newest complete one", lead)
    os._exit(143)  # pylint: disable=protected-access

  timer = threading.Timer(grace_s, expire)
  timer.daemon = True
  timer.start()


def train(config: ml_collections.ConfigDict, workdir: str, setup: Setup | None = None) -> dict:
  """Trains (or resumes) the run in `workdir`; returns the final schedule metadata."""
  builder = setup.builder if setup else load_dataset(config)
  check_config(config, builder)
  setup = setup or Setup(config, builder)
  lead = jax.process_index() == 0
  t = config.train
  stop = {"signal": None}
  old_handler = signal.signal(signal.SIGTERM, lambda *_: _on_sigterm(stop, t.preemption_grace_s, lead))
  ckpt = checkpointing.Checkpoints(workdir)
  writer = None
  try:
    identity = model_identity(config)
    meta = {"epoch": 0, "schedule": schedule.init(t.learning_rate), "identity": identity,
            "train_time_s": 0.0, "epoch_times": []}
    restored_meta = ckpt.read_meta()
    if restored_meta is not None:
      if restored_meta.get("identity") != identity:
        raise TrainingError(f"{workdir} holds a checkpoint of a different model "
                            f"({restored_meta.get('identity', {}).get('loss')}): use a new --workdir")
      abstract = setup.abstract_state()
      state, meta = ckpt.restore(abstract)
      progress.log(f"resuming from step {int(state['step'])} (epoch {meta['epoch']})", lead)
      ckpt.repair_best(int(state["step"]), meta.get("best_step"), abstract)
    else:
      state = setup.init_state(t.seed)
    n_train = builder.info.splits["train"].num_examples
    steps_per_epoch = t.steps_per_epoch or n_train // t.batch_size
    writer = progress.MetricWriter(workdir, lead, resume_step=int(state["step"]))
    bar = progress.Progress(steps_per_epoch * t.max_epochs, int(state["step"]), lead)
    rng = jax.random.key(t.seed + 1)
    while meta["epoch"] < t.max_epochs and not meta["schedule"]["stop"]:
      epoch, lr = meta["epoch"], meta["schedule"]["lr"]
      start_step = int(state["step"])
      done_in_epoch = start_step - epoch * steps_per_epoch
      epoch_start = window_start = time.time()
      step = logged_step = start_step
      data = setup.epoch_data("train", epoch, t.seed, t.batch_size).repeat()
      for b in data.skip(done_in_epoch).take(steps_per_epoch - done_in_epoch).as_numpy_iterator():
        state, metrics = setup.update_fn(state, setup.global_batch(b), jnp.float32(lr), rng)
        step += 1
        # The epoch's last step is saved after validation, with the epoch's metadata.
        saving = step % t.checkpoint_every_steps == 0 and step != (epoch + 1) * steps_per_epoch
        if saving or step % t.log_every_steps == 0 or step == (epoch + 1) * steps_per_epoch:
          metrics = jax.device_get(metrics)
          if not math.isfinite(metrics["loss"]):
            raise TrainingError(f"the loss became {metrics['loss']} at step {step}: the last good "
                                "checkpoint is kept; lower config.train.learning_rate and rerun")
          now = time.time()
          rate = (step - logged_step) * t.batch_size / max(now - window_start, 1e-9)
          window_start, logged_step = now, step
          writer.write(step, epoch=epoch, lr=lr, examples_per_s=rate,
                       wall_s=meta["train_time_s"] + now - epoch_start, **{k: float(v) for k, v in metrics.items()})
          bar.update(step, float(metrics["loss"]), rate, epoch)
        if stop["signal"] is not None:
          raise Preempted()
        if saving:
          ckpt.save(step, state, {**meta, "train_time_s": meta["train_time_s"] + time.time() - epoch_start})
      bar.newline()
      val = validation_loss(setup, state, t.seed)
      if not math.isfinite(val):
        raise TrainingError(f"the validation loss is {val} after epoch {epoch}: the last good checkpoint is kept")
      epoch_time = time.time() - epoch_start
      sched = schedule.update(meta["schedule"], val, epoch, factor=t.plateau_factor,
                              patience=t.plateau_patience, max_reductions=t.max_reductions)
      improved = sched["best_epoch"] == epoch
      meta = {**meta, "epoch": epoch + 1, "schedule": sched, "train_time_s": meta["train_time_s"] + epoch_time,
              "epoch_times": meta["epoch_times"] + [epoch_time],
              "best_step": int(state["step"]) if improved else meta.get("best_step")}
      writer.write(int(state["step"]), epoch=epoch, val_loss=val, lr=sched["lr"], epoch_time_s=epoch_time)
      progress.log(f"epoch {epoch}: val loss {val:.4f} (best {sched['best']:.4f} at epoch {sched['best_epoch']}), "
                   f"lr {sched['lr']:.2e}, {epoch_time:.0f} s", lead)
      ckpt.save(int(state["step"]), state, meta, best=improved)
      if stop["signal"] is not None:
        raise Preempted()
  except Preempted:
    if ckpt.latest.latest_step() != int(state["step"]):
      ckpt.save(int(state["step"]), state, meta)
    ckpt.wait()
    progress.log(f"SIGTERM: saved step {int(state['step'])}; rerun the same command to resume", lead)
    raise
  finally:
    signal.signal(signal.SIGTERM, old_handler)
    try:
      ckpt.wait()
    finally:
      ckpt.close()
      if writer is not None:
        writer.close()
  if lead:
    # Programs compiled for the update in this process: 1 unless a shape or dtype changed
    # between steps (each recompilation costs seconds and shows up here).
    compiled = getattr(setup.update_fn, "_cache_size", lambda: None)()
    progress.write_json(os.path.join(workdir, "train_summary.json"),
                        {**{k: meta[k] for k in ("epoch", "schedule", "train_time_s", "epoch_times")},
                         "update_compilations": compiled})
  return meta
