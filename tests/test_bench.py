"""The benchmark command: runs configs, reuses finished runs, writes the tables and plots."""

import csv

import pytest

from conftest import run_module

pytestmark = pytest.mark.slow  # end-to-end runs of the real commands


def test_bench_smoke_two_configs_then_reuse(data_dir, tmp_path):
  args = ("musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=proxy_dis,triplet_dis",
          f"--data_dir={data_dir}")
  first = run_module(*args)
  assert "done in" in first.stdout
  table = (tmp_path / "table.md").read_text()
  assert "| proxy_dis |" in table and "| triplet_dis |" in table and "Made by `python -m musicrep_jax.tools.bench" in table
  rows = list(csv.DictReader(open(tmp_path / "table.csv")))
  assert [r["model"] for r in rows] == ["proxy_dis", "triplet_dis"]
  assert min(float(r["time_ratio"]) for r in rows) == 1.0
  for png in ("retrieval_tagging.png", "triplets.png", "time_ratio.png", "training_curves.png", "subspaces.png"):
    assert (tmp_path / png).stat().st_size > 1000, png
  second = run_module(*args)
  assert second.stdout.count("reusing") == 2 and "done in" not in second.stdout


def test_bench_rejects_unknown_config(tmp_path):
  out = run_module("musicrep_jax.tools.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=nosuch", check=False)
  assert out.returncode == 2 and "configs/nosuch.py does not exist" in out.stderr


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
