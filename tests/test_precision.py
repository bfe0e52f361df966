"""Mixed precision: `model.dtype=bfloat16` computes the backbone in bfloat16 while the
parameters, batch statistics, embeddings and the loss stay float32."""

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import configlib
from musicrep_jax import train
from musicrep_jax.data import registry


def test_bfloat16_compute_keeps_float32_state_and_tracks_float32(data_dir):
  losses, states = {}, {}
  for dtype in ("float32", "bfloat16"):
    config = configlib.load("proxy_dis", "smoke")
    config.data_dir = data_dir
    config.model.dtype = dtype
    setup = train.Setup(config, registry.load(config.dataset, data_dir, build=False))
    state = setup.init_state(0)
    batch = setup.global_batch(next(setup.epoch_data("train", 0, 0, config.train.batch_size).as_numpy_iterator()))
    curve = []
    for _ in range(4):
      state, metrics = setup.update_fn(state, batch, jnp.float32(1e-3), jax.random.key(0))
      curve.append(float(metrics["loss"]))
    losses[dtype], states[dtype] = np.array(curve), state
    emb = setup.embed_fn(state, np.asarray(batch["audio"])[:, 0])
    assert emb.dtype == jnp.float32
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(states["bfloat16"]["params"]))
  assert np.all(np.isfinite(losses["bfloat16"]))
  # The same initial parameters and batch: bfloat16's 8-bit mantissa moves the loss by
  # well under 2%, and both runs descend the same way on the repeated batch.
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.02)
  assert not np.array_equal(losses["bfloat16"], losses["float32"])  # bfloat16 did take effect
  assert losses["bfloat16"][-1] < losses["bfloat16"][0] and losses["float32"][-1] < losses["float32"][0]
