"""The PyTorch twin (musicrep_jax/tools/torch_twin.py) computes what the JAX model computes (same weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch twin needs the benchmark-only extra: pip install -e .[torch]")
from musicrep_jax.tools import torch_twin  # pylint: disable=g-import-not-at-top,wrong-import-position

from musicrep_jax import configlib, frontend, losses, objective, train  # pylint: disable=g-import-not-at-top


@pytest.mark.parametrize("preset", ["smoke", "default"])
def test_twin_matches_jax_model(smoke_builder, preset):
  config = configlib.load("proxy_dis", preset)
  setup = train.Setup(config, smoke_builder)
  state = jax.device_get(setup.init_state(3))
  rng = np.random.default_rng(0)
  # Fresh batch statistics would be 0 / 1: make them informative so eval mode is checked.
  stats = jax.tree.map(lambda x: (rng.uniform(0.5, 1.5, x.shape) * (1 + x)).astype(np.float32), state["batch_stats"])
  a = config.audio
  twin = torch_twin.MusicEncoder.from_config(config, len(setup.tag_names),
                                             frontend.mel_filterbank(16000, a.n_fft, a.n_mels))
  n_jax = sum(x.size for x in jax.tree.leaves(state["params"]))
  assert sum(p.numel() for p in twin.parameters()) == n_jax
  torch_twin.load_flax(twin, {"params": state["params"], "batch_stats": stats})
  twin = twin.to(memory_format=torch.channels_last)

  audio = (rng.normal(size=(6, setup.crop_len)) * 3000).astype(np.int16)
  want = np.asarray(setup.embed(state["params"], stats, jnp.asarray(audio)))  # eval: running statistics
  with torch.no_grad():
    got = twin.eval()(torch.as_tensor(audio)).numpy()
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
  want_train = np.asarray(setup.embed(state["params"], stats, jnp.asarray(audio), train=True)[0])
  with torch.no_grad():
    got_train = twin.train()(torch.as_tensor(audio)).numpy()  # batch statistics
  np.testing.assert_allclose(got_train, want_train, rtol=2e-3, atol=2e-3)

  # The proxy loss on the same embedding and labels.
  labels = (rng.random((6, len(setup.tag_names))) < 0.3).astype(np.float32)
  masks = setup.objective.tag_masks
  want_loss = float(losses.proxy_bce_loss(jnp.asarray(want), state["params"]["tag_weights"], labels, masks).mean())
  got_loss = float(torch_twin.proxy_loss(torch.as_tensor(want), torch.as_tensor(state["params"]["tag_weights"]),
                                         torch.as_tensor(labels), torch.as_tensor(masks)))
  assert got_loss == pytest.approx(want_loss, rel=1e-5)


def test_twin_trains(smoke_builder):
  """Every loss of the twin runs a few Adam steps on one batch (the same triplets) and its
  loss goes down; for the every-triplet loss, whose figure is the mean over the triplets
  that still violate the margin, their sum (losses.all_triplet_loss on the twin's embeddings)."""
  config = configlib.load("triplet_dis", "smoke")
  setup = train.Setup(config, smoke_builder)
  a = config.audio
  rng = np.random.default_rng(1)
  audio = torch.as_tensor((rng.normal(size=(12, setup.crop_len)) * 3000).astype(np.int16))
  labels = torch.as_tensor((rng.random((12, len(setup.tag_names))) < 0.3).astype(np.float32))
  for loss in torch_twin.LOSSES:
    torch.manual_seed(0)
    twin = torch_twin.MusicEncoder.from_config(config, len(setup.tag_names),
                                               frontend.mel_filterbank(16000, a.n_fft, a.n_mels))
    config.loss.name = loss
    o = objective.Objective(config.loss, config.model.subspace_dims, setup.tag_category)
    trainer = torch_twin.Trainer(twin, o, lr=3e-3)
    curve = []
    for _ in range(12):
      if loss == "triplet_all":
        with torch.no_grad():
          emb = jnp.asarray(trainer.model(audio).numpy())
        curve.append(float(losses.all_triplet_loss(emb, jnp.asarray(labels.numpy()), o.tag_masks,
                                                   config.loss.margin)[0].sum()))
      torch.manual_seed(1)  # the same sampled triplets every step
      step_loss = float(trainer.step(audio, labels))
      curve += [] if loss == "triplet_all" else [step_loss]
    assert np.isfinite(curve).all() and np.mean(curve[-3:]) < np.mean(curve[:3]), (loss, curve)


def test_perf_vs_torch_prints_the_ratio(data_dir):
  from conftest import run_module  # pylint: disable=import-outside-toplevel
  out = run_module("musicrep_jax.tools.perf", "--preset=smoke", "--configs=proxy_dis", "--vs-torch", "--windows=2",
                   "--steps=2", f"--data_dir={data_dir}")
  row = next(l for l in out.stdout.splitlines() if l.startswith("proxy_dis"))
  jax_rate, torch_rate, ratio = (float(v.rstrip("x")) for v in row.split()[1:4])
  assert jax_rate > 0 and torch_rate > 0 and ratio > 0  # the ratio is a median of per-window ratios
  bad = run_module("musicrep_jax.tools.perf", "--preset=smoke", "--configs=class_vanilla", "--vs-torch",
                   f"--data_dir={data_dir}", check=False)
  assert bad.returncode == 2 and "the twin has the losses proxy, triplet," in bad.stderr


@pytest.mark.parametrize("name", ["proxy_dis", "triplet_all", "triplet_all_dis", "multi_similarity_dis", "supcon",
                                  "supcon_dis"])
def test_twin_losses_match_the_objective(smoke_builder, name):
  """The twin's batch loss equals objective.Objective's on the same embeddings and labels
  (the in-batch losses without random sampling; tuned-like parameters, not the defaults)."""
  config = configlib.override(configlib.load(name, "smoke"), ["loss.margin=0.05", "loss.ms_beta=11.0",
                                                              "loss.temperature=0.2"])
  setup = train.Setup(config, smoke_builder)
  rng = np.random.default_rng(2)
  emb = rng.normal(size=(12, sum(config.model.subspace_dims))).astype(np.float32)
  labels = (rng.random((12, len(setup.tag_names))) < 0.3).astype(np.float32)
  weights = rng.normal(size=(emb.shape[1], len(setup.tag_names))).astype(np.float32)
  o = setup.objective
  want, _ = o(jax.random.key(0), jnp.asarray(emb)[:, None], jnp.asarray(weights), None, jnp.asarray(labels))
  masks = {k: torch.as_tensor(np.asarray(getattr(o, k))) for k in ("tag_masks", "tag_group", "group_masks")}
  got = torch_twin.batch_loss(config.loss, masks, torch.as_tensor(emb), torch.as_tensor(weights),
                              torch.as_tensor(labels))
  assert float(want) > 0 and float(got) == pytest.approx(float(want), rel=1e-4)
