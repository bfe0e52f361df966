"""Speed of the train step and of the input pipeline, side by side in one process.

  python -m musicrep_jax.perf [--preset=smoke|default|paper] [--configs=proxy_dis,triplet_dis] [--windows=5]

Per config: compile seconds of the update, train-step examples/s after compilation
(median of timed windows on one fixed batch), the tf.data pipeline's examples/s on the
real dataset, and their ratio (the pipeline must not be the bottleneck).
"""

from __future__ import annotations

import sys
import time

from absl import app
from absl import flags

from musicrep_jax import configlib

_PRESET = flags.DEFINE_enum("preset", "default", ["smoke", "default", "paper"], "Config preset.")
_CONFIGS = flags.DEFINE_string("configs", "proxy_dis,triplet_dis", "Comma-separated config names.")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Timed windows per measurement (the median is printed).")
_STEPS = flags.DEFINE_integer("steps", 5, "Train steps per timed window.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where the datasets live.")


def measure(name: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  config = configlib.load(name, _PRESET.value)
  config.data_dir = _DATA_DIR.value
  setup = train.Setup(config, train.load_dataset(config))
  b = config.train.batch_size
  it = setup.epoch_data("train", 0, 0, b).repeat().as_numpy_iterator()
  batch = setup.global_batch(next(it))
  state = setup.init_state(0)
  lr, rng = jnp.float32(1e-4), jax.random.key(0)
  start = time.perf_counter()
  state, metrics = setup.update_fn(state, batch, lr, rng)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  step_rates, pipe_rates = [], []
  for _ in range(_WINDOWS.value):  # alternate the two measurements so drift hits both
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics = setup.update_fn(state, batch, lr, rng)
    jax.block_until_ready(metrics)
    step_rates.append(_STEPS.value * b / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(_STEPS.value * 4):
      next(it)
    pipe_rates.append(_STEPS.value * 4 * b / (time.perf_counter() - start))
  step, pipe = float(np.median(step_rates)), float(np.median(pipe_rates))
  return dict(config=name, compile_s=compile_s, step=step, step_spread=float(np.ptp(step_rates)),
              pipeline=pipe, headroom=pipe / step, excerpts_per_example=setup.crops)


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  print(f"preset {_PRESET.value} on {jax.device_count()} x {jax.devices()[0].device_kind}; "
        f"median of {_WINDOWS.value} windows of {_STEPS.value} steps")
  print(f"{'config':<20} {'compile s':>9} {'step ex/s':>10} {'spread':>7} {'pipeline ex/s':>14} {'headroom':>9}")
  try:
    for name in _CONFIGS.value.split(","):
      r = measure(name)
      print(f"{r['config']:<20} {r['compile_s']:>9.1f} {r['step']:>10.1f} {r['step_spread']:>7.1f} "
            f"{r['pipeline']:>14.0f} {r['headroom']:>8.1f}x", flush=True)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
