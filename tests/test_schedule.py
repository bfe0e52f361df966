"""schedule.replay and scripts/schedule_cuts.py: the plateau rule run again on logged figures."""

import importlib.util
import os

from musicrep_jax import schedule

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_replay_follows_the_rule_by_hand_and_fewer_cuts_are_a_prefix():
  figures = [5.0, 4.0, 4.5, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9]
  rule = dict(factor=10.0, patience=2, threshold=0.0)
  two = schedule.replay(figures, 1.0, max_reductions=2, **rule)
  # epochs 2, 3 do not improve on 4.0: cut after epoch 3; 4 improves; 5, 6 do not: cut; 7, 8 do not: stop.
  assert two["lrs"] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
  assert (two["best_epoch"], two["last_epoch"], two["stopped"]) == (4, 8, True)
  one = schedule.replay(figures, 1.0, max_reductions=1, **rule)
  # One cut fewer: the same lrs until the epoch where the second cut came, and it stops there.
  assert one["lrs"][:-1] == two["lrs"][:6] and one["last_epoch"] == 6 and one["best_epoch"] == 4
  zero = schedule.replay(figures, 1.0, max_reductions=0, **rule)
  assert zero["lrs"] == [1.0] * 4 and zero["best_epoch"] == 1


def test_schedule_cuts_replays_a_committed_run_and_finds_the_cuts_it_needed():
  spec = importlib.util.spec_from_file_location("schedule_cuts", os.path.join(ROOT, "scripts", "schedule_cuts.py"))
  cuts = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(cuts)
  # patience 24, 5 cuts; its best epoch (187) came after the second cut (epochs 149 and 176).
  r = cuts.run_cuts(os.path.join(ROOT, "docs", "results", "tuned_p24", "runs", "proxy_dis-seed0"))
  assert r["replayable"] and r["epochs"] == 284 and r["best_epoch"] == 187 and r["needed"] == 2
  assert [c["same"] for c in r["by_cuts"]] == [False, False, True, True, True, True]
  assert r["by_cuts"][2]["epochs"] == 212 and r["by_cuts"][5]["epochs"] == 284


def test_replay_run_reads_the_rule_from_the_config_and_minimises_negated_quality():
  train = dict(select_by="quality", learning_rate=1.0, plateau_factor=10.0, plateau_patience=2,
               plateau_threshold=0.0, max_reductions=2)
  epochs = [dict(val_loss=0.0, val_quality=-f) for f in [5.0, 4.0, 4.5, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9]]
  by_hand = schedule.replay([5.0, 4.0, 4.5, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9], 1.0, factor=10.0, patience=2,
                            max_reductions=1)
  assert schedule.replay_run(train, epochs)["lrs"] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
  assert schedule.replay_run(train, epochs, max_reductions=1) == by_hand
  losses = [dict(e, val_loss=-e["val_quality"], val_quality=0.0) for e in epochs]
  assert schedule.replay_run(dict(train, select_by="loss"), losses) == schedule.replay_run(train, epochs)
