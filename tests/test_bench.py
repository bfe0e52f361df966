"""The benchmark command: runs configs, reuses finished runs, writes the tables and plots."""

import csv
import os

import pytest

from conftest import run_module

pytestmark = pytest.mark.slow  # end-to-end runs of the real commands


def test_bench_two_seeds_mean_sd_cells_reuse_and_partial_tables(data_dir, tmp_path):
  import json  # pylint: disable=import-outside-toplevel
  best = tmp_path.parent / f"{tmp_path.name}-best.json"  # a tune --out best.json: proxy_dis at its tuned setting
  best.write_text(json.dumps({"proxy_dis": {"trial": 3, "overrides": {"train.learning_rate": 0.0031},
                                            "val_quality_best": 0.5}}))
  args = ("musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=proxy_dis,baseline_random",
          "--seeds=2", f"--data_dir={data_dir}", f"--tuned={best}")
  first = run_module(*args, f"--jobs={min(2, len(os.sched_getaffinity(0)))}")  # two runs side by side
  assert first.stdout.count("done in") == 4 and first.stdout.count("train.log)") == 4, first.stdout
  assert "training" in (tmp_path / "runs" / "proxy_dis-seed1" / "train.log").read_text()
  alone = tmp_path.parent / f"{tmp_path.name}-alone"  # the same run, alone: the same numbers
  run_module("musicrep_jax.main", "--config=configs/proxy_dis.py:smoke", f"--workdir={alone}",
             f"--config.data_dir={data_dir}", "--config.train.seed=0", "--config.train.learning_rate=0.0031")
  from musicrep_jax.evaluate import WALL_TIMES, flatten  # pylint: disable=import-outside-toplevel
  def numbers(workdir):
    return {k: v for k, v in flatten(json.load(open(workdir / "eval.json"))).items() if k not in WALL_TIMES}
  assert numbers(alone) == numbers(tmp_path / "runs" / "proxy_dis-seed0")
  assert json.load(open(tmp_path / "runs" / "proxy_dis-seed0" / "config.json"))["train"]["learning_rate"] == 0.0031
  table = (tmp_path / "table.md").read_text()
  assert "Made by `python -m musicrep_jax.tools.bench" in table and "mean ± std over 2 seeds" in table
  assert "PARTIAL" not in table
  row = next(l for l in table.splitlines() if l.startswith("| proxy_dis | ") and "/" in l)  # the cost table
  assert "±" in row and "% ± " in row  # and the evaluation's share of the run, over 2 seeds
  assert "| chance (exact) |" in table and "| baseline_random |" in table
  rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "table.csv"))}
  assert set(rows) == {"proxy_dis", "baseline_random"} and rows["proxy_dis"]["seeds"] == "2"
  assert float(rows["proxy_dis"]["gflop_to_best_ratio"]) == 1.0 and float(rows["proxy_dis"]["step_s"]) > 0
  assert 0 < float(rows["proxy_dis"]["eval_share"]) < 1 and rows["baseline_random"]["eval_share"] == ""
  assert rows["proxy_dis"]["R@1_std"] != "" and rows["baseline_random"]["gflop_to_best"] == ""
  for png in ("retrieval_tagging.png", "triplets.png", "time_ratio.png", "training_curves.png", "subspaces.png",
              "quality_vs_cost.png"):
    assert (tmp_path / png).stat().st_size > 1000, png
  found = (tmp_path / "findings.md").read_text()
  assert "## The paper's findings" in found and "PARTIAL" not in found  # its pairs need other models: none here
  assert "## The paper's triplet-prediction claim" in found and "| proxy_dis | " in found.split("still rising?")[-1]
  written = {f: (tmp_path / f).read_bytes() for f in ("table.md", "findings.md", "subspaces.png")}
  second = run_module(*args)
  assert second.stdout.count("reusing") == 4 and "done in" not in second.stdout
  assert "are as they were written" in second.stdout  # nothing new: the tables keep their bytes
  assert {f: (tmp_path / f).read_bytes() for f in written} == written
  # A run that is missing (its small files not there): the table is marked partial.
  (tmp_path / "runs" / "proxy_dis-seed1" / "eval.json").unlink()
  third = run_module(*args, "--report_only", f"--control={tmp_path}", f"--convergence={tmp_path}")
  assert "PARTIAL: 1 run(s) missing" in third.stdout and "proxy_dis-seed1" in (tmp_path / "table.md").read_text()
  assert (tmp_path / "findings.md").read_text().startswith("**PARTIAL**")
  # The dataset control against itself: every difference is zero; one seed left: no p.
  control = (tmp_path / "control.md").read_text()
  assert control.count("| proxy_dis | ") == 5 and control.count("| +0.000 | - |") == 5, control
  # Against itself: no difference; proxy_dis has one seed left, so no sd and no verdict.
  conv = (tmp_path / "convergence.md").read_text()
  assert "| proxy_dis | test ROC-AUC | 1 | " in conv and "| +0.0000 | - | inconclusive |" in conv, conv
  empty = tmp_path / "other"
  fourth = run_module(*args, "--report_only", f"--control={empty}", check=False)
  assert fourth.returncode == 2 and f"--control={empty} has no finished run" in fourth.stderr


def test_findings_verdicts_follow_a_paired_t_test_over_seeds():
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  def runs(a, b):  # R@1 per seed of two models
    return {"A": {s: {"recall_at_k/1": v} for s, v in enumerate(a)}, "B": {s: {"recall_at_k/1": v} for s, v in enumerate(b)}}
  claim = (findings.Finding("A beats B", "recall_at_k/1", (("A", "B"),), scale=100),)
  a, b = [0.70, 0.72, 0.71], [0.60, 0.61, 0.615]
  d = np.subtract(a, b)
  t = d.mean() / (d.std(ddof=1) / np.sqrt(3))  # the paired t statistic, from its formula
  from scipy import stats  # pylint: disable=import-outside-toplevel
  (row,) = findings.evaluate(runs(a, b), claim)
  assert row["verdict"] == "reproduces" and row["pairs"][0]["p"] == pytest.approx(2 * stats.t.sf(abs(t), 2))
  assert row["pairs"][0]["mean"] == pytest.approx(100 * d.mean()) and row["pairs"][0]["same_sign"] == 3
  assert findings.evaluate(runs(b, a), claim)[0]["verdict"] == "does not reproduce"
  assert findings.evaluate(runs([0.70, 0.60, 0.72], [0.65, 0.66, 0.64]), claim)[0]["verdict"] == "inconclusive"
  assert findings.evaluate(runs(a[:1], b[:1]), claim)[0]["verdict"] == "inconclusive"  # one seed: no spread
  small = (findings.Finding("A costs little", "recall_at_k/1", (("A", "B"),), scale=100, margin=2.0),)
  assert findings.evaluate(runs([0.700, 0.701, 0.699], [0.695, 0.697, 0.696]), small)[0]["verdict"] == "reproduces"
  assert findings.evaluate(runs(a, b), small)[0]["verdict"] == "does not reproduce"


def test_convergence_pairs_seeds_against_the_shipped_seed_sd():
  import numpy as np  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  shipped = {"A": {0: {"roc_auc": 0.80}, 1: {"roc_auc": 0.82}, 2: {"roc_auc": 0.81}}}
  def verdict(longer):
    rows = findings.convergence(shipped, {"A": {s: {"roc_auc": v} for s, v in enumerate(longer)}})
    assert [r["metric"] for r in rows] == ["roc_auc"]  # R@1 absent from both: no row
    return rows[0]
  sd = np.std([0.80, 0.82, 0.81], ddof=1)  # 0.01
  row = verdict([0.805, 0.83, 0.815])  # +0.01 on average: within one sd
  assert row["diff"] == pytest.approx(np.mean([0.005, 0.01, 0.005])) and row["sd"] == pytest.approx(sd)
  assert row["verdict"] == "converged" and row["seeds"] == 3
  assert verdict([0.83, 0.84, 0.83])["verdict"] == "not converged"  # +0.023
  assert verdict([0.78, 0.80, 0.79])["verdict"] == "not converged"  # -0.02: a move either way
  one = findings.convergence({"A": {0: {"roc_auc": 0.8}}}, {"A": {0: {"roc_auc": 0.9}, 1: {"roc_auc": 0.9}}})
  assert one[0]["seeds"] == 1 and one[0]["sd"] is None and one[0]["verdict"] == "inconclusive"
  assert findings.convergence(shipped, {"B": {0: {"roc_auc": 0.8}}}) == []
  assert "| A | test ROC-AUC | 3 | 0.8100 | 0.8167 | +0.0067 | 0.0100 | converged |" in \
      findings.convergence_markdown([verdict([0.805, 0.83, 0.815])])


def test_dataset_control_compares_subspace_figures_with_welchs_test():
  import numpy as np  # pylint: disable=import-outside-toplevel
  from scipy import stats  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  cats = ("genre", "mood", "instrument", "era")
  rng = np.random.default_rng(0)
  def run(leak):  # a flattened eval.json: own category 0.9, the others `leak`, plus noise
    grid = {f"shortcut_auc/{s}/{c}": (0.9 if s == c else leak) + rng.normal(0, 0.01) for s in cats for c in cats}
    return {**grid, "factor_triplet_acc_subspace/overall": 0.6 + rng.normal(0, 0.02)}
  a = {"proxy_dis": {s: run(0.75) for s in range(3)}}
  b = {"proxy_dis": {s: run(0.55) for s in range(4)}}
  rows = {r["metric"]: r for r in findings.control(a, b)}
  assert set(rows) == {m for m, _ in findings.CONTROL_METRICS} - {"factor_triplet_acc_subspace/instrument"}  # absent
  want = [np.mean([f[f"shortcut_auc/{s}/{c}"] for s in cats for c in cats if s != c]) for f in a["proxy_dis"].values()]
  assert rows["shortcut_leak"]["a"] == pytest.approx(want)
  # Welch's test from its formula: t on the unpooled standard error, Welch-Satterthwaite degrees of freedom.
  x, y = np.array(rows["shortcut_leak"]["a"]), np.array(rows["shortcut_leak"]["b"])
  va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
  t = (x.mean() - y.mean()) / np.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
  assert rows["shortcut_leak"]["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
  assert rows["shortcut_leak"]["p"] < 1e-3 and rows["shortcut_leak"]["diff"] == pytest.approx(x.mean() - y.mean())
  assert findings.welch_p([0.5], [0.4, 0.6]) is None and findings.welch_p([1, 1], [1, 1]) is None
  table = findings.control_markdown(list(rows.values()), "corr", "decor")
  assert "| corr (seeds) | decor (seeds) |" in table and table.count("| proxy_dis |") == 4


def test_training_cost_in_flops_does_not_depend_on_load(smoke_builder):
  """class and proxy are the same model: the FLOPs of their compiled steps are equal (a
  measured time would vary with the load); the paper's sampler embeds three inputs per
  triplet, so its step costs about three in-batch steps."""
  from musicrep_jax import configlib, train  # pylint: disable=import-outside-toplevel
  from musicrep_jax.tools import report  # pylint: disable=import-outside-toplevel
  flops = {}
  for name in ("class", "proxy", "triplet", "triplet_paper"):
    setup = train.Setup(configlib.load(name, "smoke"), smoke_builder)
    flops[name] = train.step_flops(setup, setup.init_state(0))
  assert flops["class"] == flops["proxy"] > 0
  assert 2.5 < flops["triplet_paper"] / flops["triplet"] < 3.5, flops
  run = {"steps_to_best": 40, "flops_per_step": flops["proxy"], "recall_at_k": {"1": 0.5}}
  rows = report.summarise({"class": [run], "proxy": [dict(run)]}, {"class": 0.2, "proxy": 0.3})
  assert rows[0]["gflop_to_best"] == rows[1]["gflop_to_best"] == 40 * flops["proxy"] / 1e9
  assert rows[1]["s_to_best_ratio"] == 1.5


def test_bench_rejects_unknown_config_and_more_jobs_than_cpus(tmp_path):
  out = run_module("musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=nosuch", check=False)
  assert out.returncode == 2 and "configs/nosuch.py does not exist" in out.stderr
  cpus = len(os.sched_getaffinity(0))
  out = run_module("musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=proxy_dis",
                   f"--jobs={cpus + 1}", check=False)
  assert out.returncode == 2 and f"--jobs={cpus + 1} must be between 1 and the {cpus} CPU(s)" in out.stderr
  assert not (tmp_path / "runs").exists()


def test_perf_prints_step_and_pipeline_rates(data_dir, tmp_path):
  out = run_module("musicrep_jax.tools.perf", "--preset=smoke", "--configs=proxy_dis", "--windows=1", "--steps=2",
                   f"--data_dir={data_dir}", f"--profile={tmp_path}")
  assert list(tmp_path.glob("proxy_dis/**/*.xplane.pb"))  # the trace of 10 steps
  assert "XLA op time in" in out.stdout or "trace written to" in out.stdout
  row = next(l for l in out.stdout.splitlines() if l.startswith("proxy_dis"))
  compile_s, step, spread, pipeline, headroom, gflop, tflops, peak = row.split()[1:]
  assert float(step) > 0 and float(pipeline) > 0 and float(gflop) > 0
  assert abs(float(tflops) - float(gflop) * float(step) / 1e3) < 0.01 + 0.1 * float(tflops)
  assert abs(float(headroom.rstrip("x")) - float(pipeline) / float(step)) < 0.1 * float(headroom.rstrip("x")) + 0.1


def test_triplet_claim_pairs_every_metric_model_with_every_classifier():
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  claims = findings.triplet_claim(("triplet_dis", "supcon_dis", "triplet_dis"))
  assert [c.metric for c in claims] == [m for _, m in findings.TRIPLET_METRICS]
  assert claims[1].pairs == (("triplet_dis", "proxy_dis"), ("triplet_dis", "class_dis"),
                             ("supcon_dis", "proxy_dis"), ("supcon_dis", "class_dis"))


def test_still_rising_compares_the_projected_rise_with_seed_noise():
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  flat = [[(e, 0.70 + 0.001 * s) for e in range(10)] for s in range(3)]  # a plateau; best 0.700/0.701/0.702
  rising = [[(e, 0.50 + 0.01 * e + 0.001 * s) for e in range(10)] for s in range(3)]  # +0.01 an epoch
  rows = {r["model"]: r for r in findings.still_rising({"flat": flat, "rising": rising})}
  assert rows["flat"]["rise"] == pytest.approx(0.0, abs=1e-9) and rows["flat"]["still_rising"] is False
  assert rows["rising"]["rise"] == pytest.approx(0.06) and rows["rising"]["noise"] == pytest.approx(0.001)
  assert rows["rising"]["still_rising"] is True


def test_when_table_pairs_metric_learning_with_classification_in_every_condition():
  from musicrep_jax.tools import findings  # pylint: disable=import-outside-toplevel
  def runs(shift):  # three seeds: triplet_dis above class_dis by `shift` on every figure
    out = {}
    for name, base in (("triplet_dis", shift), ("class_dis", 0.0)):
      out[name] = {s: {"recall_at_k/1": 0.6 + base + 0.001 * s, "triplet_acc/complete/overall": 0.7 + base,
                       "roc_auc": 0.8 + base + 0.002 * s, "open_recall_at_k/1": 0.3 + base,
                       "open_triplet_acc/complete/overall": 0.5 + base, "few_shot_roc_auc/5": 0.6 + base + 0.001 * s}
                   for s in range(3)}
    return out
  rows = findings.when({"full": runs(-0.05), "open_set": runs(0.05)}, pairs=(("triplet_dis", "class_dis"),))
  by = {(r["condition"], r["metric"]): r for r in rows}
  assert by[("full", "R@1")]["verdict"] == "loses" and by[("full", "R@1")]["mean"] == pytest.approx(-5.0)
  assert by[("open_set", "5-shot ROC-AUC, held-out tags")]["verdict"] == "wins"
  assert ("open_set", "ROC-AUC") not in by  # the open-set row reads the held-out tags' figures
  table = findings.when_markdown(rows)
  assert table.count("\n") == 4 and "| full | -5 ± 0, p 0: loses |" in table.replace("+", "")


def test_sigterm_saves_every_run_under_way_and_writes_no_step_costs(data_dir, tmp_path):
  import re  # pylint: disable=import-outside-toplevel
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  from conftest import start  # pylint: disable=import-outside-toplevel
  jobs = min(2, len(os.sched_getaffinity(0)))
  configs = ["proxy_dis", "triplet_dis"][:jobs]
  proc = start("-m", "musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", f"--configs={','.join(configs)}",
               f"--data_dir={data_dir}", f"--jobs={jobs}", "--override=train.max_epochs=200",
               "--override=train.plateau_patience=200")
  logs = [tmp_path / "runs" / f"{c}-seed0" / "metrics.jsonl" for c in configs]
  # Signalled once every run has logged a step (its programs compiled: a signal during a
  # compilation longer than the grace period ends a run without a save, as it should).
  logged = lambda l: l.exists() and "\n" in l.read_text()
  deadline = time.time() + 300
  while time.time() < deadline and not all(logged(l) for l in logs):
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  stdout, stderr = proc.communicate(timeout=180)
  assert proc.returncode == 2 and "rerun the same command to resume them" in stderr and "Traceback" not in stderr, stderr[-2000:]
  assert "measuring step costs" not in stdout
  for c in configs:  # each run got the bench's SIGINT, saved its step and stopped
    log = (tmp_path / "runs" / f"{c}-seed0" / "train.log").read_text()
    step = int(re.search(r"SIGINT: saved step (\d+)", log).group(1))
    assert str(step) in os.listdir(tmp_path / "runs" / f"{c}-seed0" / "checkpoints"), log[-1000:]
