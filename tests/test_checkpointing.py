"""The packed checkpoint format: a state restores exactly, a checkpoint written before
packing (one Orbax array per leaf) still restores, and a state of another layout is
refused in one sentence."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from musicrep_jax import checkpointing


def _state(width=3):
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  rng = np.random.default_rng(0)
  tree = {"step": np.int32(7), "params": {"w": rng.normal(size=(width, 4)).astype(np.float32),
                                          "b": rng.normal(size=(4,)).astype(np.float32)},
          "opt_state": (np.int32(3), rng.normal(size=(2, width, 1)).astype(np.float32)),
          "batch_stats": {"mean": rng.normal(size=()).astype(np.float32)}}
  state = jax.tree.map(lambda x: jax.device_put(jnp.asarray(x), replicated), tree)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), state)
  return state, abstract


def _same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype and x.shape == y.shape and x.sharding == y.sharding
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_packed_state_is_a_few_arrays_and_restores_exactly(tmp_path):
  state, abstract = _state()
  packed = checkpointing.pack_state(state)
  assert sorted(packed) == ["float32", "int32"] and packed["float32"].shape == (3 * 4 + 4 + 2 * 3 + 1,)
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  ckpt.save(5, state, {"epoch": 2}, best=True)
  ckpt.wait()
  ckpt.close()
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  for which in ("latest", "best"):
    restored, meta = ckpt.restore(abstract, which)
    _same(restored, state)
    assert meta["epoch"] == 2
  ckpt.close()


def test_a_checkpoint_written_before_packing_still_restores(tmp_path):
  state, abstract = _state()
  manager = ocp.CheckpointManager(str(tmp_path / "checkpoints"), item_names=("state", "meta"))
  manager.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"epoch": 1})))
  manager.wait_until_finished()
  manager.close()
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  restored, meta = ckpt.restore(abstract)
  ckpt.close()
  _same(restored, state)
  assert meta == {"epoch": 1}


def test_a_state_of_another_layout_is_refused_in_one_sentence(tmp_path):
  state, _ = _state(width=3)
  ckpt = checkpointing.Checkpoints(str(tmp_path))
  ckpt.save(5, state, {"epoch": 2, "model": "proxy"})
  ckpt.wait()
  _, wider = _state(width=5)
  with pytest.raises(checkpointing.CheckpointError, match=r"does not match this model \(proxy was saved\)"):
    ckpt.restore(wider)
  ckpt.close()
