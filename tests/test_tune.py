"""The tuning search: the same trials for every family, successive halving, resumable records."""

import json
import math

import pytest

from conftest import run_module


def test_trial_points_are_a_fixed_sobol_design_inside_the_space():
  from musicrep_jax.tools import tuning  # pylint: disable=import-outside-toplevel
  space = [("train.learning_rate", 5e-4, 2e-2, True), ("loss.margin", 0.1, 0.5, False)]
  points = tuning.trial_points(space, 8)
  assert points == tuning.trial_points(space, 8)  # deterministic: a rerun resumes the same trials
  lrs = sorted(p["train.learning_rate"] for p in points)
  assert all(5e-4 <= v <= 2e-2 for v in lrs) and all(0.1 <= p["loss.margin"] <= 0.5 for p in points)
  # Sobol stratifies: each eighth of the log-lr range holds exactly one point.
  cells = sorted(int(8 * (math.log(v) - math.log(5e-4)) / (math.log(2e-2) - math.log(5e-4))) for v in lrs)
  assert cells == list(range(8))
  # Every family has the same number of trials, and the same learning rates when its space has the same shape.
  assert [p["train.learning_rate"] for p in tuning.trial_points(tuning.FAMILIES["triplet_dis"], 8)] == \
      [p["train.learning_rate"] for p in tuning.trial_points(tuning.FAMILIES["supcon_dis"], 8)]


def test_tuned_overrides_come_from_the_family_or_its_twin(tmp_path):
  from musicrep_jax.tools import tuning  # pylint: disable=import-outside-toplevel
  best = tmp_path / "best.json"
  best.write_text(json.dumps({"triplet_dis": {"overrides": {"train.learning_rate": 0.001, "loss.margin": 0.2}}}))
  want = ["train.learning_rate=0.001", "loss.margin=0.2"]
  assert tuning.tuned_overrides(str(best), "triplet_dis") == want
  assert tuning.tuned_overrides(str(best), "triplet_dis_paper") == want and tuning.tuned_overrides(str(best), "triplet") == want
  assert tuning.tuned_overrides(str(best), "proxy_dis") == [] and tuning.tuned_overrides(str(best), "baseline_random") == []


@pytest.mark.slow
def test_search_halves_records_every_trial_and_resumes(data_dir, tmp_path):
  args = ("musicrep_jax.tools.tune", "--preset=smoke", f"--out={tmp_path}", "--families=proxy_dis", "--trials=2",
          "--rungs=1,2", "--keep=1", f"--data_dir={data_dir}")
  first = run_module(*args)
  assert first.stdout.count("to epoch 1:") == 2 and first.stdout.count("to epoch 2:") == 1
  records = json.load(open(tmp_path / "proxy_dis" / "trials.json"))
  assert len(records) == 2 and sorted(len(r["rungs"]) for r in records.values()) == [1, 2]
  promoted = next(r for r in records.values() if "1" in r["rungs"])
  other = next(r for r in records.values() if "1" not in r["rungs"])
  assert promoted["rungs"]["0"]["val_quality_best"] >= other["rungs"]["0"]["val_quality_best"]
  assert promoted["rungs"]["1"]["epochs_run"] == 2 and promoted["rungs"]["1"]["gflop"] > 0
  # The test split was never read: the trials evaluated their training time only.
  for k in records:
    assert "roc_auc" not in json.load(open(tmp_path / "proxy_dis" / f"trial{k}" / "eval.json"))
  best = json.load(open(tmp_path / "best.json"))["proxy_dis"]
  assert best["overrides"] == promoted["params"] and "| proxy_dis | 2 |" in (tmp_path / "summary.md").read_text()
  second = run_module(*args)  # everything is recorded: nothing trains again
  assert "to epoch" not in second.stdout and json.load(open(tmp_path / "proxy_dis" / "trials.json")) == records
  bad = run_module(*args[:3], "--families=nope", check=False)
  assert bad.returncode == 2 and "--families names nope" in bad.stderr
