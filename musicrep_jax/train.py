"""The training loop: one jitted, sharded update over a ("data",) device mesh."""

from __future__ import annotations

import functools
import math
import os
import platform
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax

from musicrep_jax import checkpointing
from musicrep_jax import conditions
from musicrep_jax import configlib
from musicrep_jax import errors
from musicrep_jax import evaluate
from musicrep_jax import input_pipeline
from musicrep_jax import losses
from musicrep_jax import model as model_lib
from musicrep_jax import preemption
from musicrep_jax import progress
from musicrep_jax import schedule
from musicrep_jax import unlabelled
from musicrep_jax.data import features
from musicrep_jax.data import registry


class TrainingError(errors.UserError):
  """Training cannot go on; the message says why and what to do."""


class Setup(model_lib.Model):
  """A model with its dataset: the training loss, the jitted update and the data sources."""

  def __init__(self, config: ml_collections.ConfigDict, builder):
    super().__init__(config, features.vocab_from_info(builder.info))
    self.builder = builder

  def loss(self, params, batch_stats, batch, rng, train):
    audio = batch["audio"]  # [B, K, L]
    b, k, l = audio.shape
    audio, sample = audio.reshape(b * k, l), None
    if self.loss_spec.gather is not None:  # the loss's own sampler picks the inputs: [B, M]
      rng, k_sample = jax.random.split(rng)
      index, sample = self.objective.select(k_sample, batch["labels"], k)
      audio, k = audio[index.reshape(-1)], index.shape[1]
    labelled = audio.shape[0]
    if "unlabelled" in batch:  # [U, 2, L] excerpt pairs of unlabelled recordings, in the same forward pass
      audio = jnp.concatenate([audio, batch["unlabelled"].reshape(-1, l)])
    augment_rng = None
    if train and self.config.augment.enabled:
      rng, augment_rng = jax.random.split(rng)
    out = self.embed(params, batch_stats, audio, train=train, augment_rng=augment_rng)
    emb, new_stats = (out[0], out[1]["batch_stats"]) if train else (out, batch_stats)
    loss, aux = self.objective(rng, emb[:labelled].reshape(b, k, -1), params["tag_weights"], params["tag_bias"],
                               batch["labels"], sample)
    if "unlabelled" in batch:
      u = self.config.unlabelled
      aux["unlabelled_loss"] = losses.track_contrastive_loss(emb[labelled:].reshape(-1, 2, emb.shape[-1]),
                                                             u.temperature)
      loss = loss + u.weight * aux["unlabelled_loss"]
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

  def abstract_batch(self) -> dict:
    """Shapes, dtypes and shardings of a global training batch, for lowering the update."""
    b = self.config.train.batch_size
    batch = {"audio": jax.ShapeDtypeStruct((b, self.crops, self.crop_len), jnp.int16, sharding=self.data_sharded),
             "labels": jax.ShapeDtypeStruct((b, len(self.tag_names)), jnp.float32, sharding=self.data_sharded)}
    if self.recordings is not None:
      batch["unlabelled"] = jax.ShapeDtypeStruct((self.config.unlabelled.tracks, 2, self.crop_len), jnp.int16,
                                                 sharding=self.data_sharded)
    return batch

  @functools.cached_property
  def recordings(self) -> unlabelled.Recordings | None:
    """config.unlabelled.folder's recordings, decoded once (None without a folder)."""
    folder = self.config.unlabelled.folder
    return unlabelled.Recordings(folder, self.crop_len, jax.process_index() == 0) if folder else None

  def with_unlabelled(self, host_batch: dict, step: int) -> dict:
    """The host batch of `step` with this process's share of the unlabelled excerpt pairs."""
    if self.recordings is None:
      return host_batch
    n = self.config.unlabelled.tracks // jax.process_count()
    return {**host_batch, "unlabelled": self.recordings.crops(n, self.config.train.seed, step, jax.process_index())}

  def global_batch(self, host_batch: dict) -> dict:
    return {k: jax.make_array_from_process_local_data(self.data_sharded, v) for k, v in host_batch.items()}

  @functools.cache  # pylint: disable=method-cache-max-size-none
  def source(self, split: str) -> input_pipeline.TrackSource:
    return input_pipeline.TrackSource(self.builder, split, jax.process_index(), jax.process_count(),
                                      in_memory=split == "train")

  def epoch_data(self, split: str, epoch: int, seed: int, batch_size: int, repeat: bool = False):
    """One epoch of host batches of `split`, under the run's condition (conditions.py)."""
    keep = conditions.keep_track(self.condition) if split == "train" and self.condition["label_fraction"] < 1 else None
    labels_fn = (conditions.train_labels(self.condition, self.held_out, split)
                 if self.held_out.any() or self.condition["drop_positive"] > 0 else None)
    return input_pipeline.train_dataset(
        self.source(split), batch_size=batch_size // jax.process_count(), crop_len=self.crop_len,
        crops=self.crops, seed=seed, epoch=epoch, shuffle_buffer=self.config.train.shuffle_buffer,
        keep=keep, labels_fn=labels_fn, repeat=repeat)


def check_config(config, builder=None) -> None:
  """configlib.check with this process's devices (and the dataset's size and categories
  when given)."""
  if builder is None:
    configlib.check(config, jax.device_count())
  else:
    configlib.check(config, jax.device_count(), builder.info.splits["train"].num_examples,
                    tuple(features.vocab_from_info(builder.info)))


def load_dataset(config):
  return registry.load(config.dataset, config.data_dir, manual_dir=config.manual_dir, soundfont=config.soundfont)


def validation_batches(setup: Setup, seed: int, batch: int):
  """The host batches of validation_loss: epoch 0's crops of the validation split, the
  same every epoch. Read once per run and kept in memory while they fit in
  evaluate.VALIDATION_CACHE_BYTES, the bound of the validation-quality windows (a large
  real corpus: read again each epoch)."""
  cached = getattr(setup, "_validation_batches", None)
  if cached is not None and cached[0] == (seed, batch):
    yield from cached[1]
    return
  kept, size = [], 0
  for b in setup.epoch_data("validation", 0, seed, batch).as_numpy_iterator():
    if kept is not None:
      size += sum(v.nbytes for v in b.values())
      if size <= evaluate.VALIDATION_CACHE_BYTES:
        kept.append(b)
      else:
        kept = None
    yield b
  if kept is not None:
    setup._validation_batches = ((seed, batch), kept)  # pylint: disable=protected-access


def validation_loss(setup: Setup, state, seed: int) -> float:
  n_val = setup.builder.info.splits["validation"].num_examples
  batch = min(setup.config.train.batch_size, n_val) // jax.device_count() * jax.device_count()
  total, count = 0.0, 0
  for i, b in enumerate(validation_batches(setup, seed, batch)):
    total += float(setup.eval_loss_fn(state, setup.global_batch(b), jax.random.key(i)))
    count += 1
  return total / max(count, 1)


def step_flops(setup: Setup, state) -> float | None:
  """FLOPs of one update from XLA's cost analysis of the compiled step: a training cost
  that does not depend on what else the machine is doing (None where XLA gives none)."""
  try:
    lowered = setup.update_fn.lower(state, setup.abstract_batch(), jnp.float32(0), jax.random.key(0))
    cost = lowered.compile().cost_analysis()
  except Exception:  # pylint: disable=broad-except  # a backend without cost analysis
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and "flops" in cost else None


def machine() -> str:
  """The machine a run trains on, e.g. "AMD EPYC, 2 CPUs, 1 cpu device(s), jax 0.10.2": XLA
  compiles for the processor's instruction set, so the same run sums in another order,
  and follows another trajectory, on another CPU model (or accelerator)."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
  except OSError:
    pass
  kind = jax.devices()[0].device_kind
  return f"{cpu}, {os.cpu_count()} CPUs, {jax.device_count()} {kind} device(s), jax {jax.__version__}"


class Preempted(Exception):
  """SIGTERM (a preemption) or SIGINT (Ctrl-C) arrived: the state was saved and the run
  stops; rerunning resumes it. `status`: the process's exit status (143 or 130)."""

  def __init__(self, status: int = 128 + signal.SIGTERM):
    super().__init__(signal.Signals(status - 128).name)
    self.status = status


def train(config: ml_collections.ConfigDict, workdir: str, setup: Setup | None = None) -> dict:
  """Trains (or resumes) the run in `workdir`; returns the final schedule metadata."""
  builder = setup.builder if setup else load_dataset(config)
  check_config(config, builder)
  setup = setup or Setup(config, builder)
  lead = jax.process_index() == 0
  t = config.train
  notice = preemption.Notice(t.preemption_grace_s).start()
  ckpt = checkpointing.Checkpoints(workdir)
  writer = None
  try:
    identity = setup.identity()
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
      ckpt.set_aside_newer(int(state["step"]))
      ckpt.repair_best(int(state["step"]), meta.get("best_step"), abstract)
    else:
      state = setup.init_state(t.seed)
    here = machine()
    if here not in meta.get("machines", []):  # every machine the run trained on, in order
      meta = {**meta, "machines": meta.get("machines", []) + [here]}
    n_train = builder.info.splits["train"].num_examples * setup.condition["label_fraction"]  # expected labelled tracks
    steps_per_epoch = t.steps_per_epoch or max(1, int(n_train // t.batch_size))
    writer = progress.MetricWriter(workdir, lead, resume_step=int(state["step"]))
    bar = progress.Progress(steps_per_epoch * t.max_epochs, int(state["step"]), lead)
    rng = jax.random.key(t.seed + 1)
    while meta["epoch"] < t.max_epochs and not meta["schedule"]["stop"]:
      epoch, lr = meta["epoch"], meta["schedule"]["lr"]
      start_step = int(state["step"])
      done_in_epoch = start_step - epoch * steps_per_epoch
      epoch_start = window_start = time.time()
      step = logged_step = start_step
      data = setup.epoch_data("train", epoch, t.seed, t.batch_size, repeat=True)
      for b in data.skip(done_in_epoch).take(steps_per_epoch - done_in_epoch).as_numpy_iterator():
        batch = setup.global_batch(setup.with_unlabelled(b, step))
        state, metrics = setup.update_fn(state, batch, jnp.float32(lr), rng)
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
        if notice.reached(step):
          raise Preempted(notice.status)
        if saving:
          ckpt.save(step, state, {**meta, "train_time_s": meta["train_time_s"] + time.time() - epoch_start})
      bar.newline()
      val = validation_loss(setup, state, t.seed)
      quality = evaluate.validation_quality(setup, state) if t.validation_quality or t.select_by == "quality" else {}
      if not math.isfinite(val):
        raise TrainingError(f"the validation loss is {val} after epoch {epoch}: the last good checkpoint is kept")
      epoch_time = time.time() - epoch_start
      before = meta["schedule"]
      rule = dict(factor=t.plateau_factor, patience=t.plateau_patience, threshold=t.plateau_threshold)
      watched = schedule.monitored(t.select_by, val, quality)
      sched = schedule.update(before, watched, epoch, max_reductions=t.max_reductions, **rule)
      improved = sched["best_epoch"] == epoch
      meta = {**meta, "epoch": epoch + 1, "schedule": sched, "train_time_s": meta["train_time_s"] + epoch_time,
              "epoch_times": meta["epoch_times"] + [epoch_time],
              "best_step": int(state["step"]) if improved else meta.get("best_step"), "steps_run": int(state["step"])}
      if sched["reductions"] > before["reductions"]:
        # A cut: a schedule with as many cuts as before it (the same patience) stops here. Its
        # checkpoints (the best, and this epoch's with that schedule's state) go to fewer_cuts/<k>/.
        stopped = schedule.update(before, watched, epoch, max_reductions=before["reductions"], **rule)
        ckpt.keep_fewer_cuts(before["reductions"], state, {**meta, "schedule": stopped})
      writer.write(int(state["step"]), epoch=epoch, val_loss=val, lr=sched["lr"], epoch_time_s=epoch_time, **quality)
      figure = (f"val loss {val:.4f}" if t.select_by == "loss" else
                f"val loss {val:.4f}, val quality {quality['val_quality']:.4f}")
      progress.log(f"epoch {epoch}: {figure} (best {schedule.shown(t.select_by, sched['best']):.4f} at epoch "
                   f"{sched['best_epoch']}), lr {sched['lr']:.2e}, {epoch_time:.0f} s", lead)
      ckpt.save(int(state["step"]), state, meta, best=improved)
      if notice.between_epochs():
        raise Preempted(notice.status)
  except Preempted as e:
    if ckpt.latest.latest_step() != int(state["step"]):
      ckpt.save(int(state["step"]), state, meta)
    ckpt.wait()
    progress.log(f"{e}: saved step {int(state['step'])}; rerun the same command to resume", lead)
    raise
  except jax.errors.JaxRuntimeError:
    if jax.process_count() > 1:  # a lost process: waiting for the checkpoint writes would wait for it too
      ckpt = None
    raise
  finally:
    notice.close()
    try:
      if ckpt is not None:
        ckpt.wait()
    finally:
      if ckpt is not None:
        ckpt.close()
      if writer is not None:
        writer.close()
  if lead:
    # Programs compiled for the update in this process: 1 unless a shape or dtype changed
    # between steps (each recompilation costs seconds and shows up here).
    compiled = getattr(setup.update_fn, "_cache_size", lambda: None)()
    progress.write_json(os.path.join(workdir, "train_summary.json"),
                        {**{k: meta[k] for k in ("epoch", "schedule", "train_time_s", "epoch_times")},
                         "best_step": meta.get("best_step"), "steps_run": int(state["step"]),
                         "machines": meta.get("machines", []),
                         **({"derived_from": meta["derived_from"]} if "derived_from" in meta else {}),
                         "update_compilations": compiled, "flops_per_step": step_flops(setup, state)})
  return meta
