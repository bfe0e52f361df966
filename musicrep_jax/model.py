"""A trained or to-be-trained model, without its dataset or the training loop.

`Model(config, vocab)` holds what a run derives from its config and tag vocabulary:
the encoder (models.py), the log-mel front end, the objective, the device mesh, the
layout of the train state, the jitted embedding function, and the model's identity
(what a checkpoint must match). `Model.load(workdir)` restores a trained run's weights
for inference; `search` uses only this module, and the training loop builds on it.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from musicrep_jax import augment as augment_lib
from musicrep_jax import checkpointing
from musicrep_jax import conditions
from musicrep_jax import errors
from musicrep_jax import frontend
from musicrep_jax import models
from musicrep_jax import objective as objective_lib
from musicrep_jax import progress
from musicrep_jax.data import features


def identity(config) -> dict:
  """What a checkpoint must match to be resumed or evaluated."""
  ident = {"loss": config.loss.to_dict(), "model": config.model.to_dict(), "audio": config.audio.to_dict()}
  if conditions.of(config) != conditions.DEFAULT:  # a run under another condition is another model
    ident["condition"] = conditions.of(config)
  return json.loads(json.dumps(ident))  # as it reads back from checkpoint metadata


def optimizer() -> optax.GradientTransformation:
  """Adam's moments (the learning rate is applied by the train step): part of the
  train state's layout, so a checkpoint restores without the training loop."""
  return optax.scale_by_adam()


class Model:
  """An encoder with its front end and objective, defined by a config and a vocabulary."""

  def __init__(self, config: ml_collections.ConfigDict, vocab: dict):
    self.config = config
    self.vocab = vocab
    self.tag_names = features.tag_names(vocab)
    self.tag_category = features.tag_categories(vocab)
    self.categories = tuple(vocab)  # the dataset's categories, in order: one subspace each
    m = config.model.to_dict()
    self.dim_category = np.repeat(np.arange(len(self.categories)), m["subspace_dims"])  # [D]
    self.model = models.MusicEncoder(num_tags=len(self.tag_names), **{
        **m, "subspace_dims": tuple(m["subspace_dims"]), "dtype": jnp.dtype(m["dtype"])})
    self.condition = conditions.of(config)
    self.held_out = conditions.held_out(vocab, self.condition)  # [T] tags no label of training shows
    self.objective = objective_lib.Objective(config.loss, m["subspace_dims"], self.tag_category, ~self.held_out)
    self.loss_spec = self.objective.spec
    self.crops = objective_lib.crops_per_track(config.loss)
    self.crop_len = int(round(config.audio.crop_seconds * features.SAMPLE_RATE))
    self.log_mel = functools.partial(frontend.log_mel, sample_rate=features.SAMPLE_RATE, n_fft=config.audio.n_fft,
                                     hop=config.audio.hop, n_mels=config.audio.n_mels)
    self.mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    self.replicated = NamedSharding(self.mesh, P())
    self.data_sharded = NamedSharding(self.mesh, P("data"))
    self.tx = optimizer()

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

  def identity(self) -> dict:
    return identity(self.config)

  def embed(self, params, batch_stats, audio, train=False, augment_rng=None):
    """int16 audio [N, L] -> embeddings [N, D] (and new batch stats when training);
    augment_rng: draw config.augment's transforms for each excerpt (augment.py)."""
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
      aug = None if augment_rng is None else augment_lib.draw(augment_rng, audio.shape[0], self.config.augment)
      return self.model.apply(variables, self.log_mel(audio, augment=aug), train=True, mutable=["batch_stats"])
    return self.model.apply(variables, self.log_mel(audio), train=False)

  @functools.cached_property
  def embed_fn(self):
    """jitted (state, int16 audio [N, L]) -> embeddings [N, D] for evaluation."""
    return jax.jit(lambda s, audio: self.embed(s["params"], s["batch_stats"], audio))

  def tag_scores(self, state, embeddings, prototypes=None, probabilities: bool = False) -> np.ndarray:
    """[N, T] tag scores of song embeddings (`prototypes` [T, D] for metric-learning losses)."""
    params = jax.device_get(state["params"])
    fn = self.objective.tag_probabilities if probabilities else self.objective.tag_scores
    return np.asarray(fn(jnp.asarray(embeddings), params["tag_weights"], params["tag_bias"], prototypes))

  def restore(self, workdir: str):
    """(state, metadata of the newest checkpoint) with the weights of the run's
    config.eval.checkpoint ("best", or "latest"; the newest when there is no best)."""
    ckpt = checkpointing.Checkpoints(workdir)
    try:
      which = self.config.eval.checkpoint
      meta = ckpt.read_meta(which) or ckpt.read_meta("latest")
      if meta is None:
        raise checkpointing.CheckpointError(f"{workdir} holds no checkpoint: train first (--mode=train)")
      if meta.get("identity") != self.identity():
        raise checkpointing.CheckpointError(f"{workdir} holds a checkpoint of a different model: "
                                            "evaluate it with the config it was trained with")
      abstract = self.abstract_state()
      try:
        restored = ckpt.restore(abstract, which)
      except checkpointing.NoIntactCheckpoint:
        if which == "latest":
          raise
        print(f"{workdir}/best has no intact checkpoint: evaluating the newest intact training checkpoint "
              "instead", flush=True)
        restored = None
      state, _ = restored or ckpt.restore(abstract, "latest")
      # The training-time figures come from the newest checkpoint, the weights from `which`.
      return state, ckpt.read_meta("latest")
    finally:
      ckpt.close()


def _run_json(path):
  """The JSON of a run's file, or one sentence naming it and what is wrong."""
  try:
    return json.loads(path.read_text())
  except UnicodeDecodeError as e:
    raise errors.UserError(f"{path} is not text (byte {e.start}): the run wrote JSON there; restore the file from a "
                           "copy of the run, or train again") from None
  except json.JSONDecodeError as e:
    raise errors.UserError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}): restore the file "
                           "from a copy of the run, or train again") from None
  except OSError as e:
    raise errors.UserError(f"{path} cannot be read ({e.strerror})") from None


def _keys(d: dict, prefix: str = "") -> set[str]:
  return set().union(*[_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k} for k, v in d.items()])


def read_workdir(workdir: str) -> tuple[ml_collections.ConfigDict, dict]:
  """(config, vocabulary) that a run wrote to its workdir, checked: a file that is not
  JSON, a config key this version does not know (a hand edit, another version) or a
  vocabulary of the wrong shape is one sentence naming the file and the key."""
  from musicrep_jax import configlib  # pylint: disable=import-outside-toplevel
  paths = {n: progress.path(workdir) / n for n in ("config.json", "tags.json")}
  for path in paths.values():
    if not path.exists():
      raise errors.UserError(f"{path} is missing: give the --workdir of a run trained (or evaluated with "
                             "--mode=eval) by this version of musicrep_jax")
  raw = _run_json(paths["config.json"])
  if not isinstance(raw, dict):
    raise errors.UserError(f"{paths['config.json']} is not a run's config (a JSON object of sections)")
  unknown = sorted(_keys(raw) - _keys(configlib.base().to_dict()))
  if unknown:
    raise errors.UserError(f"{paths['config.json']} has the key {unknown[0]!r}, which this version of musicrep_jax "
                           f"does not know{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}: remove it "
                           "if it was edited by hand, or use the version that trained the run")
  vocab = _run_json(paths["tags.json"])
  ok = isinstance(vocab, dict) and vocab and all(
      isinstance(c, str) and isinstance(t, list) and t and all(isinstance(x, str) for x in t) and len(set(t)) == len(t)
      for c, t in vocab.items())
  if not ok:
    raise errors.UserError(f"{paths['tags.json']} is not a tag vocabulary (a JSON object of category -> list of "
                           "distinct tag names): restore it from a copy of the run, or evaluate again with --mode=eval")
  return ml_collections.ConfigDict(raw), vocab


def load(workdir: str) -> tuple[Model, dict]:
  """The model of a trained run and its restored state, from the workdir alone."""
  model = Model(*read_workdir(workdir))
  state, _ = model.restore(workdir)
  return model, state
