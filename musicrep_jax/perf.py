"""Speed of the train step and of the input pipeline, side by side in one process.

  python -m musicrep_jax.perf [--preset=smoke|default|paper] [--configs=proxy_dis,triplet_dis] [--windows=5]
  python -m musicrep_jax.perf --memory=64,512,2048 [--memory_epochs=3]

Per config: compile seconds of the update, train-step examples/s after compilation
(median of timed windows on one fixed batch), the tf.data pipeline's examples/s on the
real dataset, and their ratio (the pipeline must not be the bottleneck); FLOPs per
example from XLA's cost analysis of the compiled step, the FLOP/s achieved, and the
device's peak memory (GPU/TPU; CPU does not report it).
With --memory: the input pipeline's host memory (resident set) after each of several
epochs, per shuffle-buffer size, each size in a fresh process: it must follow the
buffer (tracks x bytes per track) and not grow from epoch to epoch.
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
_OVERRIDE = flags.DEFINE_multi_string("override", [], "section.key=value for every config, e.g. model.dtype=bfloat16.")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "The device's peak TFLOP/s: adds an MFU column.")
_MEMORY = flags.DEFINE_list("memory", [], "Shuffle-buffer sizes: measure the pipeline's host memory instead "
                            "(first config of --configs).")
_MEMORY_EPOCHS = flags.DEFINE_integer("memory_epochs", 3, "Epochs read per --memory size.")


def _rss_mb() -> float:
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def memory_child(name: str, preset: str, data_dir: str, buffer: int, epochs: int) -> dict:
  """Runs in a fresh process: reads `epochs` epochs; RSS (MB) after each."""
  from musicrep_jax import input_pipeline  # pylint: disable=import-outside-toplevel
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  config = configlib.load(name, preset)
  config.data_dir = data_dir
  builder = train.load_dataset(config)
  crop_len = int(config.audio.crop_seconds * 16000)
  base = _rss_mb()
  rss, examples = [], 0
  source = input_pipeline.TrackSource(builder, "train")
  for epoch in range(epochs):
    ds = input_pipeline.train_dataset(source, batch_size=config.train.batch_size, crop_len=crop_len, crops=1,
                                      seed=0, epoch=epoch, shuffle_buffer=buffer)
    for b in ds.as_numpy_iterator():
      examples += len(b["labels"])
    rss.append(_rss_mb())
  track = next(builder.as_dataset(split="train").take(1).as_numpy_iterator())
  return dict(buffer=buffer, base=base, rss=rss, examples=examples,
              buffer_mb=buffer * sum(v.nbytes for v in track.values() if hasattr(v, "nbytes")) / 2**20)


def memory_table(name: str) -> None:
  import multiprocessing  # pylint: disable=import-outside-toplevel
  ctx = multiprocessing.get_context("spawn")
  print(f"input pipeline host memory, {name}:{_PRESET.value}, {_MEMORY_EPOCHS.value} epochs per size")
  print(f"{'shuffle_buffer':>14} {'buffer MB':>9} {'RSS before':>10} " +
        " ".join(f"{'epoch ' + str(e):>8}" for e in range(_MEMORY_EPOCHS.value)) + f" {'growth':>7}")
  for buffer in (int(b) for b in _MEMORY.value):
    with ctx.Pool(1) as pool:
      r = pool.apply(memory_child, (name, _PRESET.value, _DATA_DIR.value, buffer, _MEMORY_EPOCHS.value))
    print(f"{buffer:>14} {r['buffer_mb']:>9.0f} {r['base']:>10.0f} " + " ".join(f"{m:>8.0f}" for m in r["rss"]) +
          f" {r['rss'][-1] - r['rss'][0]:>+7.0f}", flush=True)


def measure(name: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  config = configlib.override(configlib.load(name, _PRESET.value), _OVERRIDE.value)
  config.data_dir = _DATA_DIR.value
  setup = train.Setup(config, train.load_dataset(config))
  b = config.train.batch_size
  it = setup.epoch_data("train", 0, 0, b).repeat().as_numpy_iterator()
  batch = setup.global_batch(next(it))
  state = setup.init_state(0)
  lr, rng = jnp.float32(1e-4), jax.random.key(0)
  start = time.perf_counter()
  update = setup.update_fn.lower(state, batch, lr, rng).compile()
  compile_s = time.perf_counter() - start
  cost = update.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  state, metrics = update(state, batch, lr, rng)
  jax.block_until_ready(metrics)
  step_rates, pipe_rates = [], []
  for _ in range(_WINDOWS.value):  # alternate the two measurements so drift hits both
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics = update(state, batch, lr, rng)
    jax.block_until_ready(metrics)
    step_rates.append(_STEPS.value * b / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(_STEPS.value * 4):
      next(it)
    pipe_rates.append(_STEPS.value * 4 * b / (time.perf_counter() - start))
  step, pipe = float(np.median(step_rates)), float(np.median(pipe_rates))
  mem = jax.devices()[0].memory_stats() or {}
  return dict(config=name, compile_s=compile_s, step=step, step_spread=float(np.ptp(step_rates)),
              pipeline=pipe, headroom=pipe / step, excerpts_per_example=setup.crops,
              gflop_per_example=flops / b / 1e9, tflops=flops / b * step / 1e12,
              peak_gb=mem.get("peak_bytes_in_use", 0) / 2**30)


def main(argv):
  del argv
  if _MEMORY.value:
    memory_table(_CONFIGS.value.split(",")[0])
    return
  import jax  # pylint: disable=import-outside-toplevel
  print(f"preset {_PRESET.value} {' '.join(_OVERRIDE.value)} on {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}; median of {_WINDOWS.value} windows of {_STEPS.value} steps")
  print(f"{'config':<20} {'compile s':>9} {'step ex/s':>10} {'spread':>7} {'pipeline ex/s':>14} {'headroom':>9} "
        f"{'GFLOP/ex':>9} {'TFLOP/s':>8} {'peak GB':>8}")
  try:
    for name in _CONFIGS.value.split(","):
      r = measure(name)
      print(f"{r['config']:<20} {r['compile_s']:>9.1f} {r['step']:>10.1f} {r['step_spread']:>7.1f} "
            f"{r['pipeline']:>14.0f} {r['headroom']:>8.1f}x {r['gflop_per_example']:>9.2f} {r['tflops']:>8.3f} "
            f"{r['peak_gb'] or float('nan'):>8.2f}"
            + (f"   MFU {100 * r['tflops'] / _PEAK.value:.1f}%" if _PEAK.value else ""), flush=True)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
