"""launch/*.sh --dry-run prints the complete command sequence and runs none of it."""

import os
import subprocess

from conftest import REPO


def dry(script, *args):
  return subprocess.run(["bash", os.path.join(REPO, "launch", script), *args], capture_output=True, text=True,
                        timeout=60)


def commands(out):
  return [l[2:] for l in out.stdout.splitlines() if l.startswith("+ ")]


def test_tpu_vm_dry_run_creates_installs_runs_on_all_workers_and_deletes():
  out = dry("tpu_vm.sh", "--name=t1", "--zone=z1", "--type=v5litepod-16", "--bucket=bkt",
            "--config=configs/triplet_dis.py:paper", "--dry-run")
  assert out.returncode == 0, out.stderr
  cmds = commands(out)
  steps = ["git -C", "tpu-vm create t1 --zone=z1 --accelerator-type=v5litepod-16", "tpu-vm scp", "uv venv --python 3.12",
           "gcsfuse --implicit-dirs bkt /gcs", "musicrep_jax.main --config=configs/triplet_dis.py:paper "
           "--workdir=/gcs/runs/triplet_dis --config.data_dir=gs://bkt/tensorflow_datasets --distributed",
           "tpu-vm delete t1 --zone=z1"]
  found = [next((i for i, c in enumerate(cmds) if s in c), None) for s in steps]
  assert None not in found and found == sorted(found), (found, cmds)
  assert all("--worker=all" in c for c in cmds if "tpu-vm ssh" in c)
  assert "pip install -p .venv -e '.[tpu]'" in cmds[found[3]]
  kept = commands(dry("tpu_vm.sh", "--bucket=bkt", "--keep", "--dry-run"))
  assert not any("delete" in c for c in kept)


def test_tpu_vm_spot_dry_run_requests_queued_spot_capacity_and_shows_the_resume_loop():
  out = dry("tpu_vm.sh", "--name=s1", "--zone=z1", "--type=v5litepod-16", "--bucket=bkt", "--spot",
            "--max-attempts=7", "--gcs-direct", "--dry-run")
  assert out.returncode == 0, out.stderr
  cmds = commands(out)
  steps = ["queued-resources create s1 --node-id=s1 --zone=z1 --accelerator-type=v5litepod-16", "wait until:",
           "tpu-vm scp", "musicrep_jax.main --config=configs/proxy_dis.py:paper --workdir=gs://bkt/runs/proxy_dis",
           "on preemption", "request it again, reinstall, rerun the same command", "queued-resources delete s1"]
  found = [next((i for i, c in enumerate(cmds) if s in c), None) for s in steps]
  assert None not in found and found == sorted(found), (found, cmds)
  assert cmds[found[0]].endswith("--spot") and "--max-attempts=7" in cmds[found[4]]
  assert not any("gcsfuse" in c or "tpu-vm create" in c for c in cmds)  # --gcs-direct: no mount; Spot: queued
  assert "max-attempts" in dry("tpu_vm.sh", "--bucket=bkt", "--spot", "--max-attempts=0", "--dry-run").stderr


def test_gpu_node_dry_run_installs_builds_data_and_runs_on_the_chosen_gpus():
  out = dry("gpu_node.sh", "--data=/shared/tfds", "--workdir=/shared/runs/p", "--gpus=0,1,2,3", "--dry-run")
  assert out.returncode == 0, out.stderr
  cmds = commands(out)
  assert any("pip install -p .venv -e .[cuda]" in c for c in cmds)
  assert any("musicrep_jax.data --dataset=synth_music --data_dir=/shared/tfds" in c for c in cmds)
  assert cmds[-1].startswith("env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 CUDA_VISIBLE_DEVICES=0,1,2,3 ")
  assert cmds[-1].endswith("musicrep_jax.main --config=configs/proxy_dis.py:paper --workdir=/shared/runs/p "
                           "--config.data_dir=/shared/tfds")


def test_launch_scripts_reject_missing_and_unknown_arguments():
  for script, args, message in [("tpu_vm.sh", ["--dry-run"], "give --bucket"),
                                ("gpu_node.sh", ["--dry-run"], "give --data"),
                                ("gpu_node.sh", ["--nope"], "unknown argument --nope")]:
    out = dry(script, *args)
    assert out.returncode == 2 and message in out.stderr and not out.stdout, (script, out.stderr)
