"""The benchmark command: runs configs, reuses finished runs, writes the tables and plots."""

import csv

from conftest import run_module


def test_bench_smoke_two_configs_then_reuse(data_dir, tmp_path):
  args = ("musicrep_jax.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=proxy_dis,triplet_dis",
          f"--data_dir={data_dir}")
  first = run_module(*args)
  assert "done in" in first.stdout
  table = (tmp_path / "table.md").read_text()
  assert "| proxy_dis |" in table and "| triplet_dis |" in table and "Made by `python -m musicrep_jax.bench" in table
  rows = list(csv.DictReader(open(tmp_path / "table.csv")))
  assert [r["model"] for r in rows] == ["proxy_dis", "triplet_dis"]
  assert min(float(r["time_ratio"]) for r in rows) == 1.0
  for png in ("retrieval_tagging.png", "triplets.png", "time_ratio.png", "training_curves.png", "subspaces.png"):
    assert (tmp_path / png).stat().st_size > 1000, png
  second = run_module(*args)
  assert second.stdout.count("reusing") == 2 and "done in" not in second.stdout


def test_bench_rejects_unknown_config(tmp_path):
  out = run_module("musicrep_jax.bench", "--preset=smoke", f"--out={tmp_path}", "--configs=nosuch", check=False)
  assert out.returncode == 2 and "configs/nosuch.py does not exist" in out.stderr
