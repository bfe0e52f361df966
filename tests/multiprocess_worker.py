"""One process of tests/test_multiprocess.py: a few sharded train steps on a fixed global
batch, with this process feeding its rows of it; prints the losses and a parameter digest.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT DATA_DIR
"""

import json
import sys

import jax
import numpy as np

pid, nproc, port, data_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if nproc > 1:
  try:  # cross-process collectives on CPU
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except AttributeError:
    pass
  jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=nproc, process_id=pid)

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
from musicrep_jax import configlib, input_pipeline, train  # pylint: disable=wrong-import-position
from musicrep_jax.data import registry  # pylint: disable=wrong-import-position

config = configlib.load("triplet_dis_track", "smoke")
config.data_dir = data_dir
setup = train.Setup(config, registry.load(config.dataset, data_dir, build=False))
b = config.train.batch_size
batches = input_pipeline.train_dataset(input_pipeline.TrackSource(setup.builder, "train"), batch_size=b,
                                       crop_len=setup.crop_len, crops=setup.crops, seed=0, epoch=0, shuffle_buffer=64)
rows = slice(pid * b // nproc, (pid + 1) * b // nproc)  # this process's rows of each global batch
state = setup.init_state(0)
losses = []
for batch in batches.take(3).as_numpy_iterator():
  local = {k: v[rows] for k, v in batch.items()}
  state, metrics = setup.update_fn(state, setup.global_batch(local), jnp.float32(0.005), jax.random.key(1))
  losses.append(float(metrics["loss"]))
params = jax.tree.leaves(jax.device_get(state["params"]))
print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
                  "losses": losses, "digest": [float(np.abs(p).sum()) for p in params]}), flush=True)
