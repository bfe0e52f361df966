"""CPU seconds that XLA spends compiling one config's update step and init, under the
XLA_FLAGS of this process (no persistent cache: each run compiles afresh).

  for f in "" --xla_cpu_use_fusion_emitters=false; do
    XLA_FLAGS="--xla_backend_optimization_level=0 $f" python scripts/compile_cost.py triplet_dis:smoke
  done

Alternate the variants over several rounds on a shared machine; compare CPU seconds.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp

from musicrep_jax import configlib, train
from musicrep_jax.data import registry


def main(spec: str = "triplet_dis:smoke", data_dir: str = "~/tensorflow_datasets") -> None:
  jax.config.update("jax_enable_compilation_cache", False)
  name, _, preset = spec.partition(":")
  config = configlib.load(name, preset)
  setup = train.Setup(config, registry.load(config.dataset, os.path.expanduser(data_dir), build=False))
  update = setup.update_fn.lower(setup.abstract_state(), setup.abstract_batch(), jnp.float32(0), jax.random.key(0))
  init = jax.jit(setup._init).lower(jax.random.key(0))  # pylint: disable=protected-access
  costs = {}
  for what, lowered in (("update", update), ("init", init)):
    start = time.process_time()
    lowered.compile()
    costs[what] = time.process_time() - start
  print(f"{spec} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}: update {costs['update']:.2f} CPU-s, "
        f"init {costs['init']:.2f} CPU-s")


if __name__ == "__main__":
  main(*sys.argv[1:])
