"""End-to-end training of every config (smoke preset), resume, sharding and bad input."""

import json
import os
import re
import signal
import time

import numpy as np
import pytest

from conftest import run_module, run_python, start, xla_flags

pytestmark = pytest.mark.slow  # end-to-end runs of the real commands

# configs/class.py is configs/proxy.py under the paper's other name (checked below), so it
# is not trained twice; triplet_dis and proxy_dis run end to end through `main` in other
# tests (pods, reliability; bench, search, user_files), so these checks cover each kind of
# loss and head once, masked (triplet_dis_track, class_dis) and not (proxy, class_vanilla).
# The unmasked triplet loss is triplet_dis's function with a mask of ones: its loss and
# gradient are checked on a real batch below, with the losses beyond the paper.
CONFIGS = ["triplet_dis_track", "proxy", "class_vanilla", "class_dis"]
RESUMED = ("triplet_dis_track", "proxy", "class_dis")  # one per kind of state: two crops, proxies, subdense head
EXTENDED = ["proxy_nca", "proxy_nca_dis", "triplet_bh", "triplet_bh_dis", "triplet_all_dis", "multi_similarity_dis",
            "supcon_dis", "triplet_bh_soft_dis"]


def main_args(config, workdir, data_dir, *extra):
  return ("--config=configs/" + config, f"--workdir={workdir}", f"--config.data_dir={data_dir}", *extra)


def jax_version():
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  return metadata.version("jax")


@pytest.mark.parametrize("config", CONFIGS)
def test_config_trains_checkpoints_evaluates_and_resumes(config, data_dir, tmp_path):
  workdir, started = tmp_path / config, time.time()
  first = run_module("musicrep_jax.main", *main_args(config + ".py:smoke", workdir, data_dir))
  assert "epoch 2: val loss" in first.stdout
  # A newcomer's run reads clean: no dependency banners or deprecation notices; the timing line.
  for noise in ("oneDNN", "FeatureConnector.dtype", "Downloading and preparing"):
    assert noise not in first.stdout + first.stderr, noise
  assert re.search(r"time: \d+ s in all, of which evaluation \d+ s \(\d+%\)", first.stdout)
  for name in ("config.json", "metrics.jsonl", "eval.json", "train_summary.json"):
    assert (workdir / name).exists(), name
  assert os.listdir(workdir / "checkpoints") and os.listdir(workdir / "best")
  assert list((workdir / "tensorboard").glob("events.out.tfevents*"))
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  steps = [l for l in lines if "loss" in l]
  assert steps[-1]["step"] == 24 and all(np.isfinite(l["loss"]) for l in steps)
  assert {"step", "loss", "lr", "examples_per_s", "wall_s"} <= set(steps[0])
  summary = json.load(open(workdir / "train_summary.json"))
  assert summary["update_compilations"] == 1  # no recompilation
  assert len(summary["machines"]) == 1 and summary["machines"][0].endswith(f"jax {jax_version()}")
  assert summary["flops_per_step"] > 0 and summary["steps_run"] == 24 and 8 <= summary["best_step"] <= 24
  val = [l for l in lines if "val_loss" in l]
  assert len(val) == 3 and all(0 <= l["val_roc_auc"] <= 1 and 0 <= l["val_recall_at_1"] <= 1 for l in val)
  # The common rule: the best checkpoint is the epoch of the highest validation quality,
  # the mean of validation recall@1 and ROC-AUC.
  for l in val:
    assert l["val_quality"] == pytest.approx((l["val_recall_at_1"] + l["val_roc_auc"]) / 2)
  best = max(val, key=lambda l: l["val_quality"])
  assert summary["best_step"] == best["step"] and summary["schedule"]["best"] == pytest.approx(-best["val_quality"])
  result = json.load(open(workdir / "eval.json"))
  assert 0.0 <= result["roc_auc"] <= 1.0 and set(result["recall_at_k"]) == {"1", "2", "4", "8"}
  assert 0 < result["eval_time_s"] < time.time() - started  # the evaluation's share of the run, measured
  assert result["factor_triplets_per_category"] == [8, 8, 8, 8] and "overall" in result["factor_triplet_acc_se"]
  assert set(result["shortcut_auc"]) == ({"complete", "genre", "mood", "instrument", "era"} if "dis" in config
                                         else {"complete"})
  if config not in RESUMED:
    return
  # Rerunning the same command resumes: no step is trained again.
  second = run_module("musicrep_jax.main", *main_args(config + ".py:smoke", workdir, data_dir))
  assert "resuming from step 24" in second.stdout
  assert len([l for l in map(json.loads, open(workdir / "metrics.jsonl")) if "loss" in l]) == len(steps)
  if config == "proxy":  # --mode=eval, and more epochs continue the schedule
    ev = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", workdir, data_dir, "--mode=eval"))
    assert "evaluating the best checkpoint" in ev.stdout and "epoch" not in ev.stdout
    more = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", workdir, data_dir, "--config.train.max_epochs=4"))
    assert "resuming from step 24 (epoch 3)" in more.stdout and "epoch 3: val loss" in more.stdout
    summary = json.load(open(workdir / "train_summary.json"))
    assert summary["epoch"] == 4 and len(summary["epoch_times"]) == 4
    assert len(summary["machines"]) == 1  # resumed on the same machine: listed once


@pytest.mark.parametrize("baseline", ["random", "untrained", "logmel"])
def test_baseline_is_evaluated_without_training(baseline, data_dir, tmp_path):
  out = run_module("musicrep_jax.main", *main_args(f"baseline_{baseline}.py:smoke", tmp_path, data_dir))
  assert f"evaluating the {baseline} baseline" in out.stdout and "epoch" not in out.stdout
  result = json.load(open(tmp_path / "eval.json"))
  assert not (tmp_path / "checkpoints").exists()
  assert 0 <= result["roc_auc"] <= 1 and result["steps_to_best"] is None
  if baseline == "random":  # random neighbours: the triplet tasks at chance (12 and 32 triplets here)
    assert abs(result["track_triplet_acc"] - 0.5) <= 0.25 and abs(result["factor_triplet_acc"]["overall"] - 0.5) < 0.2


def test_class_config_is_the_proxy_config():
  from musicrep_jax import configlib  # pylint: disable=import-outside-toplevel
  for preset in ("smoke", "default", "paper"):
    assert configlib.load("class", preset).to_dict() == configlib.load("proxy", preset).to_dict()


def test_extended_losses_train_on_a_real_batch(data_dir, smoke_builder, tmp_path):
  """Every loss beyond the paper, and the paper's unmasked triplet, on the embeddings of a
  real training batch through the smoke network: a finite loss, and a finite gradient that
  reaches the embeddings (so the network's weights move). The training step around a loss
  is one function for all of them (Setup.update): one extended config trains end to end
  here, and the other paper configs above. (Compiling a full update for each of the nine
  would cost a minute of the suite.)"""
  import jax  # pylint: disable=import-outside-toplevel
  from musicrep_jax import configlib, run, train  # pylint: disable=import-outside-toplevel
  embeddings = None
  for name in [*EXTENDED, "triplet"]:
    config = configlib.load(name, "smoke")
    setup = train.Setup(config, smoke_builder)
    assert setup.crops == 1 and setup.loss_spec.gather is None, name  # the embeddings below fit each of them
    if embeddings is None:  # every extended config has the same network: one forward pass serves them all
      state = setup.init_state(0)
      batch = next(setup.epoch_data("train", 0, 0, config.train.batch_size).as_numpy_iterator())
      embeddings = setup.embed_fn(state, batch["audio"][:, 0])[:, None]  # [B, 1, D]
      head = (state["params"]["tag_weights"], state["params"]["tag_bias"])
    loss_fn = lambda e, w, b, labels, objective=setup.objective: objective(jax.random.key(0), e, w, b, labels)[0]
    loss, grads = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1, 2)))(embeddings, *head, batch["labels"])
    assert np.isfinite(float(loss)) and all(np.isfinite(g).all() for g in grads), (name, loss)
    assert np.abs(grads[0]).max() > 0, name  # the loss reaches the network
  config = configlib.load(EXTENDED[0], "smoke")
  config.data_dir, config.train.max_epochs, config.eval.tasks = data_dir, 1, ("tagging",)
  assert 0.0 <= run.run(config, str(tmp_path / EXTENDED[0]))["roc_auc"] <= 1.0


def test_validation_batches_are_read_once_per_run_and_are_every_epochs(data_dir, smoke_builder):
  from musicrep_jax import configlib, train  # pylint: disable=import-outside-toplevel
  config = configlib.load("triplet_dis_track", "smoke")  # two crops a track
  config.data_dir = data_dir
  setup = train.Setup(config, smoke_builder)
  first = list(train.validation_batches(setup, 0, 4))
  again = list(train.validation_batches(setup, 0, 4))
  fresh = list(setup.epoch_data("validation", 0, 0, 4).as_numpy_iterator())
  assert len(first) == len(fresh) > 1 and all(a is b for a, b in zip(first, again))  # kept, not read again
  for a, b in zip(first, fresh):
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  other = list(train.validation_batches(setup, 1, 4))  # another seed: other crops, read
  assert not np.array_equal(other[0]["audio"], first[0]["audio"])


def test_the_training_split_in_memory_gives_the_streamed_batches(data_dir, smoke_builder, monkeypatch):
  from musicrep_jax import input_pipeline  # pylint: disable=import-outside-toplevel

  def batches(in_memory, epoch):
    source = input_pipeline.TrackSource(smoke_builder, "train", in_memory=in_memory)
    data = input_pipeline.train_dataset(source, batch_size=4, crop_len=4000, crops=2, seed=3, epoch=epoch,
                                        shuffle_buffer=16, repeat=True)
    return source, list(data.take(12).as_numpy_iterator())  # 48 crops of 36 tracks: a second pass

  for epoch in (0, 1):
    kept, got = batches(True, epoch)
    streamed, want = batches(False, epoch)
    assert kept.pieces[0] is not streamed.pieces[0]  # read from memory, not from the files
    for a, b in zip(got, want, strict=True):
      assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  monkeypatch.setattr(input_pipeline, "TRAIN_CACHE_BYTES", 1)  # a share larger than the bound streams
  assert input_pipeline.TrackSource(smoke_builder, "train", in_memory=True).pieces[0] is streamed.pieces[0]


STEP_SCRIPT = """
import numpy as np, jax, jax.numpy as jnp
from musicrep_jax import configlib, train
out = {{"devices": jax.device_count()}}
for name in ("triplet_dis_track",):  # BN, front end, in-batch triplets, two excerpts a track
  config = configlib.load(name, "smoke"); config.data_dir = "{data_dir}"; config.train.batch_size = 16
  setup = train.Setup(config, train.load_dataset(config))
  state = setup.init_state(0)
  rng = np.random.default_rng(0)
  batch = {{"audio": rng.integers(-8000, 8000, (16, setup.crops, setup.crop_len)).astype(np.int16),
           "labels": (rng.random((16, len(setup.tag_names))) < 0.3).astype(np.float32)}}
  for _ in range(2):
    state, metrics = setup.update_fn(state, setup.global_batch(batch), jnp.float32(0.005), jax.random.key(0))
  out[name + "/loss"] = np.asarray(metrics["loss"])
  for i, leaf in enumerate(jax.tree_util.tree_leaves(jax.device_get(state["params"]))):
    out[f"{{name}}/{{i}}"] = leaf
np.savez("{out}", **out)
"""


def test_eight_devices_match_one_device(data_dir, tmp_path):
  outs = {}
  for n in (1, 8):
    out = tmp_path / f"{n}.npz"
    run_python("-c", STEP_SCRIPT.format(data_dir=data_dir, out=out),
               env={"XLA_FLAGS": xla_flags(f"--xla_force_host_platform_device_count={n}")})
    outs[n] = np.load(out)
  assert int(outs[8]["devices"]) == 8 and int(outs[1]["devices"]) == 1
  for k in outs[1].files:
    if k.endswith("/loss"):  # float32 reductions summed in another order across 8 shards
      np.testing.assert_allclose(outs[8][k], outs[1][k], rtol=1e-4, err_msg=k)
    elif k != "devices":
      # After 2 Adam steps of lr 0.005: Adam divides by sqrt(v), so a parameter whose
      # gradient is near zero moves by up to lr whatever its sign, and a 1e-7 difference in
      # that gradient can show as 1e-4 in the parameter; atol 1e-3 = lr / 5.
      np.testing.assert_allclose(outs[8][k], outs[1][k], rtol=1e-3, atol=1e-3, err_msg=k)


def test_bad_configuration_fails_fast_with_one_sentence(data_dir, tmp_path):
  out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path / "a", data_dir, "--config.train.nope=1"), check=False)
  assert out.returncode != 0 and "nope" in out.stderr
  out = run_module("musicrep_jax.main", *main_args("proxy.py:huge", tmp_path / "b", data_dir), check=False)
  assert out.returncode != 0 and "unknown preset 'huge'" in out.stderr
  out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path / "c", data_dir),
                   env={"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=8")}, check=False)
  assert out.returncode == 2 and "not divisible by the 8 devices" in out.stderr
  out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path / "d", data_dir,
                                                   "--config.model.subspace_dims=(8,8,8)"), check=False)
  assert out.returncode == 2 and "subspace_dims" in out.stderr
  out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path / "e", data_dir,
                                                   "--config.dataset=nosuch"), check=False)
  assert out.returncode == 2 and "unknown dataset 'nosuch'" in out.stderr
  # Checked before the dataset is loaded (or built): the data_dir does not even exist.
  for override, message in [("train.batch_size=abc", "--config.train.batch_size=abc: invalid literal"),
                            ("train.learning_rate=0", "config.train.learning_rate=0.0 must be positive")]:
    out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path / "f", tmp_path / "no_data",
                                                     f"--config.{override}"), check=False)
    assert out.returncode != 0 and message in out.stderr, (override, out.stderr[-2000:])
    assert not (tmp_path / "no_data").exists() and not (tmp_path / "f" / "checkpoints").exists()
  # The same table-driven check, in this process, for the other kinds of mistake.
  from musicrep_jax import configlib, errors  # pylint: disable=import-outside-toplevel
  for section, key, value, message in [("audio", "crop_seconds", 0.01, "the model needs at least 2 frames"),
                                       ("model", "dtype", "float8", "config.model.dtype='float8' is unknown"),
                                       ("train", "shuffle_buffer", -1, "config.train.shuffle_buffer=-1 must be positive"),
                                       ("loss", "margin", float("nan"), "config.loss.margin")]:
    config = configlib.load("proxy", "smoke")
    config[section][key] = value
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
      configlib.check(config, devices=1)


def test_other_model_in_workdir_keeps_checkpoints(data_dir, tmp_path):
  workdir = tmp_path / "run"
  run_module("musicrep_jax.main", *main_args("proxy.py:smoke", workdir, data_dir))
  before = sorted(os.listdir(workdir / "checkpoints"))
  out = run_module("musicrep_jax.main", *main_args("triplet.py:smoke", workdir, data_dir), check=False)
  assert out.returncode == 2 and "different model" in out.stderr
  assert sorted(os.listdir(workdir / "checkpoints")) == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
  # lr 1e30: the first update blows the weights up, the next forward pass overflows.
  out = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path, data_dir, "--config.train.learning_rate=1e30",
                                                   "--config.train.checkpoint_every_steps=1",
                                                   "--config.train.log_every_steps=1"), check=False)
  assert out.returncode == 2 and "the loss became nan" in out.stderr, out.stderr[-2000:]
  bad_step = int(re.search(r"at step (\d+)", out.stderr).group(1))
  saved = [int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()]
  assert saved and max(saved) < bad_step


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])  # preemption, Ctrl-C
def test_signal_saves_and_the_rerun_resumes(signum, status, data_dir, tmp_path):
  proc = start("-m", "musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path, data_dir, "--config.train.max_epochs=200"))
  deadline = time.time() + 300
  while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists():
    time.sleep(0.5)
  time.sleep(3)
  proc.send_signal(signum)
  stdout, stderr = proc.communicate(timeout=120)
  assert proc.returncode == status and "Traceback" not in stderr, stderr[-2000:]
  step = int(re.search(rf"{signal.Signals(signum).name}: saved step (\d+)", stdout).group(1))
  assert step > 0 and str(step) in os.listdir(tmp_path / "checkpoints")
  again = run_module("musicrep_jax.main", *main_args("proxy.py:smoke", tmp_path, data_dir, "--config.train.max_epochs=1"),
                     check=False)
  assert f"resuming from step {step}" in again.stdout


# `main` as its command line runs it, with one change: a SIGTERM arrives just as the first
# epoch's last step (8 on the smoke preset) has trained, before the epoch's validation.
SIGTERM_AT_EPOCH_END = """
import os, runpy, signal, sys
from musicrep_jax import preemption
reached = preemption.Notice.reached
def reached_after_a_sigterm_at_8(self, step):
  if step == 8:
    os.kill(os.getpid(), signal.SIGTERM)
  return reached(self, step)
preemption.Notice.reached = reached_after_a_sigterm_at_8
sys.argv[0] = "main"
runpy.run_module("musicrep_jax.main", run_name="__main__")
"""


def test_a_preemption_at_an_epochs_last_step_resumes_into_its_validation(data_dir, tmp_path):
  """The preemption saves the epoch's last step before the epoch is validated; the rerun
  validates it and saves that step again, with the epoch's metadata (it failed with
  Orbax's "Checkpoint for step ... already exists"), and goes on to the end."""
  args = main_args("proxy_dis.py:smoke", tmp_path, data_dir)
  first = run_python("-c", SIGTERM_AT_EPOCH_END, *args, check=False)
  assert first.returncode == 143 and "SIGTERM: saved step 8;" in first.stdout, first.stdout[-2000:] + first.stderr[-2000:]
  assert "epoch 0:" not in first.stdout  # stopped before the validation
  again = run_module("musicrep_jax.main", *args)
  assert "resuming from step 8 (epoch 0)" in again.stdout and "epoch 0: val loss" in again.stdout
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l["epoch"] for l in lines if "val_loss" in l] == [0, 1, 2]  # each epoch validated once
  # Logged every 4 steps and at the step-10 save, each once: no step trained twice.
  assert [l["step"] for l in lines if "loss" in l] == [4, 8, 10, 12, 16, 20, 24]
  assert json.load(open(tmp_path / "train_summary.json"))["steps_run"] == 24


def test_metric_writer_in_object_store_mode_rewrites_the_file_and_keeps_a_resume_consistent(tmp_path):
  # The mode used for gs:// workdirs (no appends), through the same etils.epath layer, here on a local path.
  from musicrep_jax import progress  # pylint: disable=import-outside-toplevel
  writer = progress.MetricWriter(str(tmp_path), append=False, flush_s=3600)
  for step in range(1, 6):
    writer.write(step, loss=1.0 / step)
  assert (tmp_path / "metrics.jsonl").read_text() == ""  # not flushed yet: at most every flush_s
  writer.close()
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [1, 2, 3, 4, 5] and lines[1]["loss"] == 0.5
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "lo')  # a line cut off by a kill
  writer = progress.MetricWriter(str(tmp_path), append=False, flush_s=0, resume_step=3)
  writer.write(4, loss=9.0)
  assert [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
  writer.close()
  progress.write_json(str(tmp_path / "x.json"), {"a": 1})
  assert progress.read_json(str(tmp_path / "x.json")) == {"a": 1} and progress.read_json(str(tmp_path / "no.json")) is None
  assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # the temporary files were renamed over


def test_each_cut_keeps_the_runs_of_schedules_with_fewer_cuts_or_more_patience(data_dir, tmp_path):
  """fewer_cuts/<k>/ holds the checkpoints of the run with k cuts; scripts/fewer_cuts_runs.py
  makes that run's folder from them, and its eval.json is the one of the run trained with k
  cuts. fewer_cuts/0/ is also the start of the run with a longer patience: trained on from
  there, it gives the eval.json of that run trained from the first step."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  from musicrep_jax import schedule  # pylint: disable=import-outside-toplevel
  from musicrep_jax.evaluate import WALL_TIMES, flatten  # pylint: disable=import-outside-toplevel
  rule = ("--config.train.max_epochs=8", "--config.train.plateau_patience=1", "--config.train.plateau_threshold=0.0")
  long_run = tmp_path / "long"
  run_module("musicrep_jax.main", *main_args("proxy_dis.py:smoke", long_run, data_dir, *rule,
                                             "--config.train.max_reductions=3"))
  t = json.load(open(long_run / "config.json"))["train"]
  epochs = [json.loads(l) for l in open(long_run / "metrics.jsonl") if "val_loss" in l]
  assert (t["plateau_patience"], t["max_reductions"]) == (1, 3)
  full = schedule.replay_run(t, epochs)
  assert full["lrs"] == [e["lr"] for e in epochs]
  cuts = sum(b < a for a, b in zip([t["learning_rate"]] + full["lrs"], full["lrs"]))
  assert cuts >= 1, "the run made no cut: nothing to check"
  assert sorted(os.listdir(long_run / "fewer_cuts")) == [str(k) for k in range(cuts)]
  for k in range(cuts):  # the best checkpoint of the run that stops at its (k + 1)-th cut
    fewer = schedule.replay_run(t, epochs, max_reductions=k)
    assert os.listdir(long_run / "fewer_cuts" / str(k) / "best") == [str(epochs[fewer["best_epoch"]]["step"])]
    assert os.listdir(long_run / "fewer_cuts" / str(k) / "checkpoints") == [str(epochs[fewer["last_epoch"]]["step"])]
  spec = importlib.util.spec_from_file_location("fewer_cuts_runs", os.path.join("scripts", "fewer_cuts_runs.py"))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  script.derive(str(long_run), str(tmp_path / "derived"), 0, data_dir, model="proxy_dis")
  direct = tmp_path / "direct"
  run_module("musicrep_jax.main", *main_args("proxy_dis.py:smoke", direct, data_dir, *rule,
                                             "--config.train.max_reductions=0"))
  numbers = lambda run: {k: v for k, v in flatten(json.load(open(run / "eval.json"))).items() if k not in WALL_TIMES}
  assert numbers(tmp_path / "derived") == numbers(direct)
  summary = lambda run: {k: v for k, v in json.load(open(run / "train_summary.json")).items()
                         if k in ("epoch", "schedule", "best_step", "steps_run")}
  assert summary(tmp_path / "derived") == summary(direct)
  longer = ("--config.train.plateau_patience=2", "--config.train.max_reductions=1")
  said = script.longer_start(str(long_run), str(tmp_path / "started"), 2, 1)
  assert said.startswith("starts after epoch"), said
  start_epoch = int(said.split()[3])
  out = run_module("musicrep_jax.main", *main_args("proxy_dis.py:smoke", tmp_path / "started", data_dir, *rule, *longer))
  assert f"(epoch {start_epoch + 1})" in out.stdout + out.stderr  # it resumed there, not from the first step
  run_module("musicrep_jax.main", *main_args("proxy_dis.py:smoke", tmp_path / "longer", data_dir, *rule, *longer))
  assert numbers(tmp_path / "started") == numbers(tmp_path / "longer")
  assert summary(tmp_path / "started") == summary(tmp_path / "longer")
  assert summary(tmp_path / "longer")["epoch"] > start_epoch + 1  # it trained on past the start it was given
  timing = ("examples_per_s", "wall_s", "epoch_time_s")
  logged = lambda run: [{k: v for k, v in json.loads(l).items() if k not in timing} for l in open(run / "metrics.jsonl")]
  assert logged(tmp_path / "started") == logged(tmp_path / "longer")
  assert "fewer_cuts/0" in json.load(open(tmp_path / "started" / "train_summary.json"))["derived_from"]
