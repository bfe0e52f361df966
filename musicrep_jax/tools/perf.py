"""Speed of the train step and of the input pipeline, side by side in one process.

  python -m musicrep_jax.tools.perf [--preset=smoke|default|paper] [--configs=proxy_dis,triplet_dis] [--windows=5]
  python -m musicrep_jax.tools.perf --profile=/tmp/trace [--preset=...]  (then the op-time summary)
  python -m musicrep_jax.tools.perf --vs-torch [--torch_compile] [--preset=...] [--configs=proxy_dis,triplet_dis]
  python -m musicrep_jax.tools.perf --memory=64,512,2048 [--memory_epochs=3]

Per config: compile seconds of the update, train-step examples/s after compilation
(median of timed windows on one fixed batch), the tf.data pipeline's examples/s on the
real dataset, and their ratio (the pipeline must not be the bottleneck); FLOPs per
example from XLA's cost analysis of the compiled step, the FLOP/s achieved, and the
device's peak memory (GPU/TPU; CPU does not report it).
With --vs-torch: JAX against the PyTorch twin (musicrep_jax/tools/torch_twin.py) (same model, batch and
initial weights), alternating timed windows, and the ratio of their examples/s.
With --memory: the input pipeline's host memory (resident set) after each of several
epochs, per shuffle-buffer size, each size in a fresh process: it must follow the
buffer (tracks x bytes per track) and not grow from epoch to epoch.
"""

from __future__ import annotations

import os
import sys
import time

import musicrep_jax

musicrep_jax.cli_environment()

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from musicrep_jax import configlib
from musicrep_jax import errors

_PRESET = flags.DEFINE_enum("preset", "default", ["smoke", "default", "paper"], "Config preset.")
_CONFIGS = flags.DEFINE_string("configs", "proxy_dis,triplet_dis", "Comma-separated config names; name+key=value+... gives one config its own overrides (e.g. proxy_dis+augment.enabled=True).")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Timed windows per measurement (the median is printed).")
_STEPS = flags.DEFINE_integer("steps", 5, "Train steps per timed window.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where the datasets live.")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "section.key=value for every config, e.g. model.dtype=bfloat16.")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "The device's peak TFLOP/s: adds an MFU column.")
_MEMORY = flags.DEFINE_list("memory", [], "Shuffle-buffer sizes: measure the pipeline's host memory instead "
                            "(first config of --configs).")
_MEMORY_EPOCHS = flags.DEFINE_integer("memory_epochs", 3, "Epochs read per --memory size.")
_VS_TORCH = flags.DEFINE_bool("vs-torch", False, "Time the PyTorch twin (musicrep_jax/tools/torch_twin.py) against JAX, "
                              "alternating windows in this process; needs pip install -e '.[torch]'.")
_PROFILE = flags.DEFINE_string("profile", "", "Also trace 10 steps of each config into this folder (jax.profiler; "
                               "opens in xprof / TensorBoard) and print XLA op time by kind (needs pip install --no-deps xprof).")
_STEP_COST_JSON = flags.DEFINE_string("step_cost_json", "", "Instead of the table: each config's median seconds "
                                      "per train step, measured in windows alternating across the configs in this "
                                      "process (so load hits all alike), written to this JSON file (bench uses it).")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", False, "--vs-torch: run the twin under torch.compile.")


def _rss_mb() -> float:
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def memory_child(name: str, preset: str, data_dir: str, buffer: int, epochs: int) -> dict:
  """Runs in a fresh process: reads `epochs` epochs; RSS (MB) after each."""
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  config = configlib.load(name, preset)
  config.data_dir = data_dir
  config.train.shuffle_buffer = buffer
  builder = train.load_dataset(config)
  setup = train.Setup(config, builder)  # the training loop's own input path
  base = _rss_mb()
  rss, examples = [], 0
  for epoch in range(epochs):
    for b in setup.epoch_data("train", epoch, 0, config.train.batch_size).as_numpy_iterator():
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


def _prepare(name: str):
  """The config's setup, one fixed global batch, a fresh state and the compiled update."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from musicrep_jax import train  # pylint: disable=import-outside-toplevel
  base, *own = name.split("+")  # name+key=value+...: that config with its own overrides
  config = configlib.override(configlib.load(base, _PRESET.value), [*_OVERRIDE.value, *own])
  config.data_dir = _DATA_DIR.value
  setup = train.Setup(config, train.load_dataset(config))
  it = setup.epoch_data("train", 0, 0, config.train.batch_size).repeat().as_numpy_iterator()
  host = next(it)
  batch = setup.global_batch(setup.with_unlabelled(host, 0))  # the training loop's batch
  state = setup.init_state(0)
  lr, rng = jnp.float32(1e-4), jax.random.key(0)
  start = time.perf_counter()
  update = setup.update_fn.lower(state, batch, lr, rng).compile()
  compile_s = time.perf_counter() - start
  return dict(config=config, setup=setup, it=it, host=host, batch=batch, state=state, lr=lr, rng=rng,
              update=update, compile_s=compile_s)


def _jax_window(p: dict, steps: int) -> float:
  """Runs `steps` updates on the fixed batch; examples/s. Keeps the new state in p."""
  import jax  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  state, metrics = p["state"], None
  for _ in range(steps):
    state, metrics = p["update"](state, p["batch"], p["lr"], p["rng"])
  jax.block_until_ready(metrics)
  p["state"] = state
  return steps * p["config"].train.batch_size / (time.perf_counter() - start)


def measure(name: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  p = _prepare(name)
  b = p["config"].train.batch_size
  cost = p["update"].cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  _jax_window(p, 1)
  step_rates, pipe_rates = [], []
  for _ in range(_WINDOWS.value):  # alternate the two measurements so drift hits both
    step_rates.append(_jax_window(p, _STEPS.value))
    start = time.perf_counter()
    for _ in range(_STEPS.value * 4):
      next(p["it"])
    pipe_rates.append(_STEPS.value * 4 * b / (time.perf_counter() - start))
  step, pipe = float(np.median(step_rates)), float(np.median(pipe_rates))
  if _PROFILE.value:
    folder = os.path.join(_PROFILE.value, name)
    with jax.profiler.trace(folder):
      _jax_window(p, 10)
    op_profile(folder)
  mem = jax.devices()[0].memory_stats() or {}
  return dict(config=name, compile_s=p["compile_s"], step=step, step_spread=float(np.ptp(step_rates)),
              pipeline=pipe, headroom=pipe / step, excerpts_per_example=p["setup"].crops,
              gflop_per_example=flops / b / 1e9, tflops=flops / b * step / 1e12,
              peak_gb=mem.get("peak_bytes_in_use", 0) / 2**30)


def step_costs(names: list[str]) -> dict[str, float]:
  """{config: median seconds per train step}, every config's windows taken in turn."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  prepared = {}
  for n in names:
    prepared[n] = _prepare(n)
    _jax_window(prepared[n], 1)
    print(f"step cost: {n} compiled in {prepared[n]['compile_s']:.1f} s", flush=True)
  seconds = {n: [] for n in names}
  for _ in range(_WINDOWS.value):
    for n, p in prepared.items():
      seconds[n].append(p["config"].train.batch_size / _jax_window(p, _STEPS.value))
  return {n: float(np.median(s)) for n, s in seconds.items()}


def op_profile(folder: str, top: int = 15) -> None:
  """Prints the traced XLA ops' time grouped by kind (the fusion name before its number)."""
  import collections  # pylint: disable=import-outside-toplevel
  import glob  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  try:
    from xprof.convert import raw_to_tool_data  # pylint: disable=import-outside-toplevel
  except ImportError:
    print(f"trace written to {folder}; pip install --no-deps xprof for the op summary (what docs/PERFORMANCE.md used)")
    return
  data, _ = raw_to_tool_data.xspace_to_tool_data(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True),
                                                 "trace_viewer", {})
  host = ("ThreadpoolListener", "ThunkExecutor", "$", "PjitFunction", "ParseArguments", "CommonPjRt", "end: ")
  by_kind = collections.Counter()
  for e in json.loads(data)["traceEvents"]:
    if e.get("ph") == "X" and not e["name"].startswith(host):
      by_kind[e["name"].split(".")[0]] += e.get("dur", 0)
  total = sum(by_kind.values())
  print(f"XLA op time in {folder}: {total / 1e3:.0f} ms for 10 steps")
  for kind, us in by_kind.most_common(top):
    print(f"  {100 * us / total:5.1f}%  {kind}")


def vs_torch(name: str) -> dict:
  """JAX and the PyTorch twin (musicrep_jax/tools/torch_twin.py) from the same initial weights on
  the same batch, timed windows alternating between them; examples/s and their ratio."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise errors.ConfigError("--vs-torch needs PyTorch, a benchmark-only extra: pip install -e '.[torch]'") from None
  from musicrep_jax.tools import torch_twin  # pylint: disable=import-outside-toplevel
  from musicrep_jax import frontend  # pylint: disable=import-outside-toplevel
  p = _prepare(name)
  config, setup = p["config"], p["setup"]
  paper = setup.objective.spec.gather is not None
  if config.loss.name not in torch_twin.LOSSES or setup.crops != 1 or config.model.subdense or paper:
    raise errors.ConfigError(f"--vs-torch: the twin has the losses {', '.join(torch_twin.LOSSES)} with in-batch "
                             f"sampling, a dense head and without track regularisation; {name} uses "
                             f"{config.loss.name!r} with {setup.crops} crops{' and sub-dense heads' if config.model.subdense else ''}"
                             f"{' and the paper sampler' if paper else ''}")
  a, m = config.audio, config.model
  device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
  twin = torch_twin.MusicEncoder.from_config(config, len(setup.tag_names),
                                             frontend.mel_filterbank(16000, a.n_fft, a.n_mels))
  torch_twin.load_flax(twin, jax.device_get({"params": p["state"]["params"], "batch_stats": p["state"]["batch_stats"]}))
  trainer = torch_twin.Trainer(twin, setup.objective, lr=1e-4, compile=_TORCH_COMPILE.value, device=device,
                               bfloat16=m.dtype == "bfloat16")
  audio = torch.as_tensor(p["host"]["audio"][:, 0]).to(device)
  labels = torch.as_tensor(p["host"]["labels"].astype(np.float32)).to(device)
  b = config.train.batch_size

  def torch_window(steps):
    start = time.perf_counter()
    for _ in range(steps):
      loss = trainer.step(audio, labels)
    float(loss)  # waits for the device
    return steps * b / (time.perf_counter() - start)

  start = time.perf_counter()
  torch_window(2)  # warm-up (and torch.compile's compilation)
  torch_first_s = time.perf_counter() - start
  _jax_window(p, 1)
  jax_rates, torch_rates = [], []
  for _ in range(_WINDOWS.value):
    jax_rates.append(_jax_window(p, _STEPS.value))
    torch_rates.append(torch_window(_STEPS.value))
  ratios = np.array(jax_rates) / np.array(torch_rates)
  return dict(config=name, jax=float(np.median(jax_rates)), torch=float(np.median(torch_rates)),
              ratio=float(np.median(ratios)), ratio_min=float(ratios.min()), ratio_max=float(ratios.max()),
              jax_compile_s=p["compile_s"], torch_warmup_s=torch_first_s, device=device,
              threads=torch.get_num_threads())


def main(argv):
  del argv
  if _MEMORY.value:
    memory_table(_CONFIGS.value.split(",")[0])
    return
  if _STEP_COST_JSON.value:
    import json  # pylint: disable=import-outside-toplevel
    costs = errors.exit_on_user_error(step_costs, _CONFIGS.value.split(","))
    with open(_STEP_COST_JSON.value, "w") as f:
      json.dump({"seconds_per_step": costs, "windows": _WINDOWS.value, "steps": _STEPS.value}, f, indent=1)
    print(f"step cost: wrote {_STEP_COST_JSON.value}")
    return
  import jax  # pylint: disable=import-outside-toplevel
  print(f"preset {_PRESET.value} {' '.join(_OVERRIDE.value)} on {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}; median of {_WINDOWS.value} windows of {_STEPS.value} steps; jax "
        f"{jax.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r} "
        f"malloc tuning {'off' if os.environ.get('MUSICREP_JAX_MALLOC_TUNING', '1') == '0' else 'on'}")
  try:
    if _VS_TORCH.value:
      print(f"{'config':<14} {'JAX ex/s':>9} {'PyTorch ex/s':>12} {'JAX/PyTorch':>11} {'(min-max)':>11} "
            f"{'JAX compile s':>13} {'torch warm-up s':>15}  torch")
      for name in _CONFIGS.value.split(","):
        r = vs_torch(name)
        mode = "torch.compile" if _TORCH_COMPILE.value else "eager"
        print(f"{r['config']:<14} {r['jax']:>9.1f} {r['torch']:>12.1f} {r['ratio']:>10.2f}x "
              f"{r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f} {r['jax_compile_s']:>13.1f} {r['torch_warmup_s']:>15.1f}"
              f"  {r['device']} {mode} channels_last, {r['threads']} threads", flush=True)
      return
    print(f"{'config':<20} {'compile s':>9} {'step ex/s':>10} {'spread':>7} {'pipeline ex/s':>14} {'headroom':>9} "
          f"{'GFLOP/ex':>9} {'TFLOP/s':>8} {'peak GB':>8}")
    for name in _CONFIGS.value.split(","):
      r = measure(name)
      print(f"{r['config']:<20} {r['compile_s']:>9.1f} {r['step']:>10.1f} {r['step_spread']:>7.1f} "
            f"{r['pipeline']:>14.0f} {r['headroom']:>8.1f}x {r['gflop_per_example']:>9.2f} {r['tflops']:>8.3f} "
            f"{r['peak_gb'] or float('nan'):>8.2f}"
            + (f"   MFU {100 * r['tflops'] / _PEAK.value:.1f}%" if _PEAK.value else ""), flush=True)
  except errors.UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
