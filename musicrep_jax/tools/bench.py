"""Trains and evaluates several configs and prints the paper's comparison tables.

  python -m musicrep_jax.tools.bench --preset=smoke --out=DIR [--configs=a,b,...] [--seeds=N]

Each run lives in DIR/runs/<config>-seed<k>/ and counts as finished when its eval.json
exists (a copy of the small files of a finished run, as docs/results/ keeps them, is
enough; an interrupted run resumes from its checkpoint). Runs go seed by seed, so one
seed of every model finishes first; --jobs=N trains N side by side. Writes DIR/table.md (laid out like the paper's
Tables 1, 3 and 4), DIR/table.csv and PNG plots; when runs are missing (interrupted,
failed, or --report_only) the table says PARTIAL and names them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

import musicrep_jax

musicrep_jax.cli_environment()

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from musicrep_jax import conditions
from musicrep_jax import configlib
from musicrep_jax import errors

PAPER = ["triplet", "triplet_dis", "triplet_dis_track", "proxy", "proxy_dis", "class_vanilla", "class", "class_dis"]
EXTENDED = ["proxy_nca", "proxy_nca_dis", "triplet_bh", "triplet_bh_dis"]
PAPER_ROWS = ["triplet_paper", "triplet_dis_paper", "triplet_dis_track_paper"]  # the paper's triplet sampler
BASELINES = ["baseline_random", "baseline_untrained", "baseline_logmel"]
# Today's metric learning (#26), disentangled: the rows of the tuned comparison beside the paper's.
MODERN = ["triplet_all_dis", "multi_similarity_dis", "supcon_dis", "triplet_bh_soft_dis", "proxy_nca_dis"]
GROUPS = {"paper": PAPER, "extended": PAPER + EXTENDED, "paper_rows": PAPER_ROWS, "baselines": BASELINES,
          "modern": MODERN, "all": BASELINES + PAPER + PAPER_ROWS + EXTENDED,
          "tuned": BASELINES + PAPER + PAPER_ROWS + MODERN}
REPO = configlib.REPO

_PRESET = flags.DEFINE_enum("preset", "default", ["smoke", "default", "paper"], "Config preset of every run.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_CONFIGS = flags.DEFINE_string("configs", "paper", "Comma-separated config names or groups: 'paper' (the "
                               "paper's eight), 'extended' (the eight plus Proxy-NCA and batch-hard rows), "
                               "'paper_rows' (the triplet models with the paper's sampler), 'baselines', 'all'.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Runs per config (seeds 0..N-1); tables give mean and std.")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where the datasets live.")
_DATASET = flags.DEFINE_string("dataset", "", "Train and evaluate every run on this dataset instead of the config's "
                               "(e.g. synth_music:decorrelated, the control without correlated tags); runs go to "
                               "runs/<config>@<dataset>-seed<k>/.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "With --dataset naming a real corpus (mtg_jamendo, fma, "
                                  "magnatagatune, ...): your copy of it (config.manual_dir of every run).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: write the tables from the runs already "
                                  "finished (a partial table says which runs are missing).")
_STEP_COST = flags.DEFINE_bool("step_cost", True, "Measure every trained config's seconds per step in one process "
                               "(alternating windows) for the training-cost columns.")
_CONTROL = flags.DEFINE_string("control", "", "Another bench --out folder with the same models on another dataset "
                               "(e.g. the correlated runs, for a --dataset=synth_music:decorrelated bench): writes "
                               "OUT/control.md, the disentanglement figures of both, compared over seeds.")
_CONVERGENCE = flags.DEFINE_string("convergence", "", "Another bench --out folder with the same models and seeds "
                                   "trained by a shorter schedule (this bench trained longer: e.g. "
                                   "--override=train.plateau_patience=6 --override=train.max_reductions=3): writes "
                                   "OUT/convergence.md, test ROC-AUC and R@1 paired by seed against that folder's "
                                   "seed-to-seed sd.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.<key>=<value> for every run.")
_CONDITION = flags.DEFINE_enum("condition", "full", list(conditions.CONDITIONS),
                               "Train every run under this condition (musicrep_jax/conditions.py): open_set (tags "
                               "held out of training, measured by the open_set evaluator), labels_10 / labels_30 (10% "
                               "/ 30% of the training tracks labelled), missing_30 (each positive training tag dropped "
                               "with probability 0.3); runs go to runs/<config>@<condition>-seed<k>/.")
_TUNED = flags.DEFINE_string("tuned", "", "A tune --out folder's best.json: every config trains at its family's tuned "
                             "setting (tools/tune.py: its own family's, or its twin's for entangled and paper-sampler "
                             "configs), before any --override.")
_JOBS = flags.DEFINE_integer("jobs", 1, "Runs trained side by side (each run's output goes to RUN/train.log); the "
                             "numbers are those of one run at a time. 2 on 2 CPUs gives about 1.5x the runs per "
                             "hour of 1 (docs/PERFORMANCE.md).")
_WHEN = flags.DEFINE_bool("when", False, "Train nothing: --out holds one bench folder per condition (OUT/full, "
                          "OUT/open_set, ...); write OUT/when.md, metric learning minus classification in each.")
flags.mark_flag_as_required("out")


def config_names(spec: str) -> list[str]:
  names = []
  for part in spec.split(","):
    names += GROUPS.get(part, [part])
  for n in names:
    if not os.path.exists(os.path.join(configlib.CONFIGS_DIR, f"{n}.py")):
      raise errors.ConfigError(f"--configs names {n!r}, but configs/{n}.py does not exist")
  return names


def run_dir(out: str, name: str, seed: int) -> str:
  parts = [_DATASET.value.replace(":", "-")] if _DATASET.value else []
  parts += [_CONDITION.value] if _CONDITION.value != "full" else []
  tag = f"@{'@'.join(parts)}" if parts else ""
  return os.path.join(out, "runs", f"{name}{tag}-seed{seed}")


def condition_overrides() -> list[str]:
  return [f"condition.{k}={v}" for k, v in conditions.CONDITIONS[_CONDITION.value].items()]


def tuned_overrides(name: str) -> list[str]:
  if not _TUNED.value:
    return []
  from musicrep_jax.tools import tuning  # pylint: disable=import-outside-toplevel
  return tuning.tuned_overrides(os.path.expanduser(_TUNED.value), name)


def check_jobs(jobs: int) -> None:
  cpus = len(os.sched_getaffinity(0))
  if not 1 <= jobs <= cpus:
    raise errors.ConfigError(f"--jobs={jobs} must be between 1 and the {cpus} CPU(s) this process may use")


_RUNNING = set()  # the training processes under way


def stop_running() -> None:
  """SIGINT to every training process under way (each saves a checkpoint and stops; a
  second signal, as a terminal's Ctrl-C also sends one, changes nothing), then waits."""
  for proc in list(_RUNNING):
    if proc.poll() is None:
      proc.send_signal(signal.SIGINT)
  for proc in list(_RUNNING):
    proc.wait()


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def say(line: str) -> None:
  """One line to stdout in one write (runs side by side print from their threads)."""
  sys.stdout.write(line + "\n")
  sys.stdout.flush()


def run_one(name: str, seed: int, out: str, log: bool = False) -> dict:
  """eval.json of one run, training it first unless it is complete; with `log`, the run's
  output goes to its workdir's train.log instead of this terminal."""
  workdir = run_dir(out, name, seed)
  result = os.path.join(workdir, "eval.json")
  if os.path.exists(result):
    say(f"[bench] {name} seed {seed}: reusing {result}")
  else:
    preset = "" if _PRESET.value == "default" else f":{_PRESET.value}"
    cmd = [sys.executable, "-m", "musicrep_jax.main", f"--config={os.path.join(REPO, 'configs', name)}.py{preset}",
           f"--workdir={workdir}", f"--config.data_dir={_DATA_DIR.value}", f"--config.train.seed={seed}",
           *([f"--config.dataset={_DATASET.value}"] if _DATASET.value else []),
           *([f"--config.manual_dir={_MANUAL_DIR.value}"] if _MANUAL_DIR.value else []),
           *[f"--config.{o}" for o in tuned_overrides(name) + condition_overrides() + _OVERRIDES.value]]
    where = f" (output in {workdir}/train.log)" if log else ""
    say(f"[bench] {name} seed {seed}{where}: {' '.join(cmd[1:])}")
    start = time.time()
    if log:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, "train.log"), "a") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    else:
      proc = subprocess.Popen(cmd, cwd=REPO)
    _RUNNING.add(proc)
    proc.wait()  # interrupted: stays in _RUNNING for stop_running()
    _RUNNING.discard(proc)
    if proc.returncode != 0:
      hint = f" (its output: {workdir}/train.log)" if log else ""
      raise errors.UserError(f"{name} seed {seed} failed (exit {proc.returncode}){hint}; rerun to resume it")
    say(f"[bench] {name} seed {seed}: done in {time.time() - start:.0f} s")
  with open(result) as f:
    return json.load(f)


def run_all(runs: list[tuple[str, int]], out: str, jobs: int) -> None:
  """Every (config, seed) of `runs`, in order, `jobs` at a time. Each run keeps every CPU
  (its numbers are those of a run alone: XLA splits its work by the CPU count, not by the
  load). A failed run stops new starts; the runs under way finish, then the first failure
  is raised."""
  if jobs == 1:
    for n, s in runs:
      run_one(n, s, out)
    return
  failures, stop = [], threading.Event()

  def one(n: str, s: int) -> None:
    if stop.is_set():
      return
    try:
      run_one(n, s, out, log=True)
    except errors.UserError as e:
      failures.append(e)
      stop.set()

  with futures.ThreadPoolExecutor(jobs) as pool:
    try:
      for f in [pool.submit(one, n, s) for n, s in runs]:
        f.result()
    except BaseException:  # Ctrl-C or SIGTERM: no new run starts; those under way save and stop
      stop.set()
      pool.shutdown(wait=False, cancel_futures=True)
      stop_running()
      raise
  if failures:
    raise failures[0]


def load_run(workdir: str) -> dict:
  """A finished run's eval.json, with the FLOPs per step of its train_summary.json."""
  with open(os.path.join(workdir, "eval.json")) as f:
    result = json.load(f)
  summary = os.path.join(workdir, "train_summary.json")
  if os.path.exists(summary):
    with open(summary) as f:
      result["flops_per_step"] = json.load(f).get("flops_per_step")
  return result


DISTANCES = ("cosine", "euclidean", "dot")


def distance_figures(workdir: str) -> dict | None:
  """workdir/distances.json: recall@K and norm statistics of the run's test embeddings
  under each distance (does vanilla classification's unnormalised embedding collapse
  when compared by euclidean or dot distance?). Computed once, from
  test_embeddings.npz; None when neither file is there."""
  path = os.path.join(workdir, "distances.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  npz = os.path.join(workdir, "test_embeddings.npz")
  if not os.path.exists(npz):
    return None
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax import metrics  # pylint: disable=import-outside-toplevel
  from musicrep_jax import progress  # pylint: disable=import-outside-toplevel
  data = np.load(npz)
  figures = {d: metrics.recall_at_k(data["embeddings"], data["labels"], distance=d) for d in DISTANCES}
  figures["embedding_stats"] = metrics.embedding_stats(data["embeddings"])
  progress.write_json(path, figures)
  return figures


def write_findings(finished: dict[str, list[str]], results: dict[str, list[dict]], out: str,
                   missing: list[str]) -> None:
  """OUT/findings.md: the paper's findings (and the extended rows') as paired tests over
  seeds. results: the runs of `finished` as load_run read them, in the same order."""
  from musicrep_jax.evaluate import flatten  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  runs = {name: {int(d.rsplit("-seed", 1)[1]): flatten(r) for d, r in zip(finished[name], rs)}
          for name, rs in results.items()}
  rows = []
  for name, ds in finished.items():
    figs = [f for f in (distance_figures(d) for d in ds) if f]
    if figs and not name.startswith("baseline_random"):
      r1 = {d: [100 * f[d]["1"] for f in figs] for d in DISTANCES}
      cv = [f["embedding_stats"]["norm_cv"] for f in figs]
      rows.append(f"| {name} | " + " | ".join(f"{np.mean(v):.1f} ± {np.std(v):.1f}" for v in r1.values())
                  + f" | {np.mean(cv):.2f} | {len(figs)} |")
  from musicrep_jax.tools import report  # pylint: disable=import-outside-toplevel
  metric_models = ["triplet_dis", "triplet_dis_paper"] + [m for m in [best_metric_model()] if m in runs]
  rising = findings.still_rising({n: [report.quality_curve(d) for d in ds] for n, ds in finished.items()
                                  if not n.startswith("baseline_")})
  with open(os.path.join(out, "findings.md"), "w") as f:
    f.write(("**PARTIAL** (runs missing; see table.md).\n\n" if missing else "") + findings.__doc__.split("\n\n", 1)[1]
            + "\n## The paper's findings\n\n" + findings.markdown(findings.evaluate(runs, findings.PAPER))
            + "\n## The paper's triplet-prediction claim\n\nMetric-learning models: "
            + ", ".join(metric_models) + " (the last, where it is not a paper model, is the tuned metric-learning "
            "family with the best validation quality in --tuned's best.json).\n\n"
            + findings.markdown(findings.evaluate(runs, findings.triplet_claim(metric_models)))
            + "\n## Extended rows\n\n" + findings.markdown(findings.evaluate(runs, findings.EXTENDED))
            + "\n## Stopped while still rising?\n\n" + " ".join(findings.still_rising.__doc__.split("\n\n")[0].split())
            + "\n\n" + findings.still_rising_markdown(rising)
            + "\n## Retrieval by distance (R@1, test split; from each run's distances.json)\n\n"
            + "| model | cosine | euclidean | dot | norm CV | seeds |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def best_metric_model() -> str | None:
  """The tuned metric-learning family (one that tags by prototypes) with the best
  validation quality in --tuned's best.json; None without --tuned."""
  if not _TUNED.value:
    return None
  from musicrep_jax import objective  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import tuning  # pylint: disable=import-outside-toplevel
  best = tuning.read_best(os.path.expanduser(_TUNED.value))
  metric = {f: v for f, v in best.items()
            if objective.LOSSES[configlib.load(f).loss.name].needs_prototypes and v.get("val_quality_best") is not None}
  return max(metric, key=lambda f: metric[f]["val_quality_best"]) if metric else None


def _runs_by_seed(out: str) -> tuple[dict[str, dict[int, dict]], str]:
  """({config: {seed: flattened eval.json}}, dataset) of the finished runs in out/runs."""
  from musicrep_jax.evaluate import flatten  # pylint: disable=import-outside-toplevel
  runs, dataset = {}, None
  root = os.path.join(out, "runs")
  for d in sorted(os.listdir(root)) if os.path.isdir(root) else ():
    if "-seed" in d and os.path.exists(os.path.join(root, d, "eval.json")):
      head, seed = d.rsplit("-seed", 1)
      runs.setdefault(head.split("@")[0], {})[int(seed)] = flatten(load_run(os.path.join(root, d)))
      if dataset is None and os.path.exists(os.path.join(root, d, "config.json")):
        with open(os.path.join(root, d, "config.json")) as f:
          dataset = json.load(f).get("dataset")
  return runs, dataset or os.path.basename(out)


def write_control(out: str, other: str, shown: str) -> None:
  """OUT/control.md: the disentangled models' shortcut-probe and factor-triplet figures
  on the dataset of `other` (A) against this bench's (B), Welch's t-test over seeds."""
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  (runs_a, name_a), (runs_b, name_b) = _runs_by_seed(other), _runs_by_seed(out)
  rows = findings.control(runs_a, runs_b)
  if not rows:
    raise errors.UserError(f"--control={other} has no finished run of {', '.join(findings.CONTROL_MODELS)} "
                           "that this bench also has: give the --out folder of a bench of the same models")
  with open(os.path.join(out, "control.md"), "w") as f:
    f.write(f"The same models on {name_a} (A, `{shown}`) and on {name_b} (B, this folder); mean ± sd over "
            "seeds, and Welch's two-sided t-test of A = B (two datasets: runs are not paired by seed).\n\n"
            + findings.control_markdown(rows, name_a, name_b))


def write_convergence(out: str, shipped: str, shown: str) -> None:
  """OUT/convergence.md: this bench's runs (trained longer) against the same models and
  seeds in `shipped`, findings.convergence."""
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  rows = findings.convergence(_runs_by_seed(shipped)[0], _runs_by_seed(out)[0])
  if not rows:
    raise errors.UserError(f"--convergence={shown} has no finished run of a model and seed that this bench also has: "
                           "give the --out folder of a bench of the same models at their first schedule")
  with open(os.path.join(out, "convergence.md"), "w") as f:
    f.write(f"The runs of this folder, trained longer, against the same models and seeds in `{shown}`: test "
            "figures paired by seed. Converged: the mean paired difference is within the seed-to-seed sd of "
            f"`{shown}`'s runs.\n\n" + findings.convergence_markdown(rows))


def write_when(out: str) -> str:
  """OUT/when.md from the condition folders OUT/<condition>/ (each a bench --out folder):
  the paired differences of findings.when, and every model's figures (baselines too)."""
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  runs = {c: _runs_by_seed(os.path.join(out, c))[0] for c in conditions.CONDITIONS
          if os.path.isdir(os.path.join(out, c, "runs"))}
  rows = findings.when(runs)
  if not rows:
    raise errors.UserError(f"--when: no condition folder under {out} (OUT/full, OUT/open_set, ...) has a finished "
                           f"pair of {', '.join(f'{a}/{b}' for a, b in findings.WHEN_PAIRS)}")
  lines = ["| condition | model | seeds | " + " | ".join(l for l, _, _ in findings.WHEN_METRICS["default"]) + " |",
           "|---|---|---|---|---|---|"]
  for c, by_model in runs.items():
    for model, seeds in sorted(by_model.items()):
      cells = []
      for _, metric, scale in findings.WHEN_METRICS.get(c, findings.WHEN_METRICS["default"]):
        v = [f[metric] * scale for f in seeds.values() if f.get(metric) is not None]
        cells.append(f"{sum(v) / len(v):.3f}" if v else "-")
      lines.append(f"| {c} | {model} | {len(seeds)} | " + " | ".join(cells) + " |")
  text = ("Metric learning minus classification, paired over seeds (mean ± sd, two-sided paired t-test p, verdict: "
          "wins / loses at p < 0.05, else inconclusive). The open_set row gives the held-out tags' figures: "
          "recall@1 by a shared held-out tag, held-out tag triplets, 5-shot prototype ROC-AUC.\n\n"
          + findings.when_markdown(rows) + "\nEvery model, mean over seeds (the same figures):\n\n"
          + "\n".join(lines) + "\n")
  with open(os.path.join(out, "when.md"), "w") as f:
    f.write(text)
  return text


def measure_step_costs(names: list[str], out: str) -> dict[str, float]:
  """{config: seconds per step}, all measured in one process (perf --step_cost_json);
  reused from OUT/step_cost.json when it has them all."""
  path = os.path.join(out, "step_cost.json")
  if os.path.exists(path):
    with open(path) as f:
      known = json.load(f)["seconds_per_step"]
    if set(names) <= set(known):
      return known
  preset = _PRESET.value
  cmd = [sys.executable, "-m", "musicrep_jax.tools.perf", f"--preset={preset}", f"--configs={','.join(names)}",
         f"--data_dir={_DATA_DIR.value}", f"--step_cost_json={path}", "--windows=5", "--steps=5",
         "--override=train.shuffle_buffer=16", *[f"--override={o}" for o in _OVERRIDES.value if "." in o.split("=")[0]]]
  print(f"[bench] measuring step costs: {' '.join(cmd[1:])}", flush=True)
  if subprocess.run(cmd, cwd=REPO).returncode != 0:
    print("[bench] step cost measurement failed; the table has the FLOP-based cost only", flush=True)
    return {}
  with open(path) as f:
    return json.load(f)["seconds_per_step"]


def main(argv):
  del argv
  from musicrep_jax.tools import report  # pylint: disable=import-outside-toplevel
  out = os.path.abspath(os.path.expanduser(_OUT.value))
  os.makedirs(out, exist_ok=True)
  if _WHEN.value:
    print(errors.exit_on_user_error(write_when, out))
    return
  names = errors.exit_on_user_error(config_names, _CONFIGS.value)
  signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the runs under way save, the tables are written
  dirs = {n: [run_dir(out, n, s) for s in range(_SEEDS.value)] for n in names}
  failure = None
  shown = ["table.md", "findings.md"] + (["control.md"] if _CONTROL.value else []) + (
      ["convergence.md"] if _CONVERGENCE.value else [])  # the reports printed at the end
  # Every run finished before, and its tables written: leave them as they are (committed
  # tables keep their bytes when a script runs a finished step again); --report_only rewrites.
  finished_before = all(os.path.exists(os.path.join(d, "eval.json")) for ds in dirs.values() for d in ds)
  as_written = (not _REPORT_ONLY.value and finished_before
                and all(os.path.exists(os.path.join(out, r)) for r in shown + ["table.csv"]))
  if not _REPORT_ONLY.value:
    try:  # seed by seed: one seed of every model is done before a second seed starts
      errors.exit_on_user_error(check_jobs, _JOBS.value)
      run_all([(n, s) for s in range(_SEEDS.value) for n in names], out, _JOBS.value)
    except (errors.UserError, KeyboardInterrupt) as e:
      stop_running()
      failure = e
  if as_written and failure is None:
    for r in shown:
      print(open(os.path.join(out, r)).read())
    print(f"[bench] every run was finished: {out}/table.md and the rest are as they were written "
          "(--report_only writes them again)")
    return
  interrupted = isinstance(failure, KeyboardInterrupt)
  why = ("interrupted: the runs under way saved their checkpoints; rerun the same command to resume them"
         if interrupted else str(failure))
  finished = {n: [d for d in ds if os.path.exists(os.path.join(d, "eval.json"))] for n, ds in dirs.items()}
  missing = [os.path.basename(d) for n, ds in dirs.items() for d in ds if d not in finished[n]]
  results = {n: [load_run(d) for d in ds] for n, ds in finished.items() if ds}
  if not results:
    print(f"error: no finished run in {out}/runs" + (f" ({why})" if failure else ""), file=sys.stderr)
    sys.exit(2)
  trained = [n for n in results if not n.startswith("baseline_")]
  # Interrupted: no minutes of step timing on the way out.
  step_seconds = measure_step_costs(trained, out) if _STEP_COST.value and trained and not interrupted else {}
  curves = {n: [report.validation_curve(d) for d in finished[n]] for n in results}
  rows = report.summarise(results, step_seconds, curves)
  command = "python -m musicrep_jax.tools.bench " + " ".join(a for a in sys.argv[1:])
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(report.markdown(rows, command, _SEEDS.value, missing))
  with open(os.path.join(out, "table.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}, key=lambda k: (k != "model", k)))
    writer.writeheader()
    writer.writerows(rows)
  report.plots(rows, {n: finished[n] for n in results}, out)
  write_findings(finished, results, out, missing)
  if _CONTROL.value:
    errors.exit_on_user_error(write_control, out, os.path.abspath(os.path.expanduser(_CONTROL.value)), _CONTROL.value)
  if _CONVERGENCE.value:
    errors.exit_on_user_error(write_convergence, out, os.path.abspath(os.path.expanduser(_CONVERGENCE.value)),
                              _CONVERGENCE.value)
  for r in shown:
    print(open(os.path.join(out, r)).read())
  print(f"[bench] wrote {out}/table.md, table.csv and plots" + (f"; PARTIAL: {len(missing)} run(s) missing" if missing else ""))
  if failure is not None:
    print(f"error: {why}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
