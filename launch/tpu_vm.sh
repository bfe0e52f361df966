#!/usr/bin/env bash
# Train on a Cloud TPU VM (single host or pod slice): create the VM, copy the code,
# install on every worker, run main on all workers, delete the VM.
#
#   launch/tpu_vm.sh --name=mrj --zone=us-central2-b --type=v4-8 \
#       --config=configs/proxy_dis.py:paper --data=gs://BUCKET/tensorflow_datasets \
#       --workdir=gs://BUCKET/runs/proxy_dis [--dry-run] [--keep]
#
# Build the dataset once (python -m musicrep_jax.data --dataset=synth_music --data_dir=DIR)
# and copy DIR to the bucket (gcloud storage cp -r DIR gs://BUCKET/tensorflow_datasets).
set -euo pipefail
NAME=musicrep; ZONE=us-central2-b; TYPE=v4-8; VERSION=tpu-ubuntu2204-base
CONFIG=configs/proxy_dis.py:paper; DATA=""; WORKDIR=""; DRY=0; KEEP=0
for arg in "$@"; do
  case "$arg" in
    --name=*) NAME="${arg#*=}" ;; --zone=*) ZONE="${arg#*=}" ;; --type=*) TYPE="${arg#*=}" ;;
    --version=*) VERSION="${arg#*=}" ;; --config=*) CONFIG="${arg#*=}" ;; --data=*) DATA="${arg#*=}" ;;
    --workdir=*) WORKDIR="${arg#*=}" ;; --dry-run) DRY=1 ;; --keep) KEEP=1 ;;
    *) echo "error: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$DATA" ] && [ -n "$WORKDIR" ] || { echo "error: give --data=gs://... and --workdir=gs://..." >&2; exit 2; }
run() { echo "+ $*"; [ "$DRY" = 1 ] || "$@"; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SSH=(gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command)
run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" --version="$VERSION"
run gcloud compute tpus tpu-vm scp --recurse --zone="$ZONE" --worker=all "$ROOT" "$NAME":~/musicrep_jax
run "${SSH[@]}" "cd ~/musicrep_jax && python3 -m venv .venv && .venv/bin/pip install -q -e '.[tpu]' && .venv/bin/pip install -q --no-deps 'tinysoundfont>=0.3.7,<0.4'"
# jax.distributed.initialize() finds the other workers by itself on Cloud TPU.
run "${SSH[@]}" "cd ~/musicrep_jax && .venv/bin/python -m musicrep_jax.main --config=$CONFIG --workdir=$WORKDIR --config.data_dir=$DATA --distributed"
[ "$KEEP" = 1 ] || run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet
