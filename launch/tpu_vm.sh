#!/usr/bin/env bash
# Train on a Cloud TPU VM (one host or a pod slice): create the VM, copy the code, install
# on every worker, mount the bucket, run main on all workers, delete the VM.
#
#   launch/tpu_vm.sh --name=mrj --zone=us-central2-b --type=v4-8 --bucket=BUCKET \
#       --config=configs/proxy_dis.py:paper [--run=proxy_dis] [--dry-run] [--keep]
#
# Data preparation, once, on any machine:
#   python -m musicrep_jax.data --dataset=synth_music --data_dir=DIR
#   gcloud storage cp -r DIR gs://BUCKET/tensorflow_datasets
# Every worker reads gs://BUCKET/tensorflow_datasets (TFDS reads GCS directly) and
# writes to gs://BUCKET/runs/RUN through a gcsfuse mount at /gcs, a path all workers share
# (Orbax checkpoints of a multi-host run need one). The VM is deleted at the end, also
# when training fails, unless --keep is given.
set -euo pipefail
NAME=musicrep; ZONE=us-central2-b; TYPE=v4-8; VERSION=tpu-ubuntu2204-base; BUCKET=""
CONFIG=configs/proxy_dis.py:paper; RUN=""; DRY=0; KEEP=0
for arg in "$@"; do
  case "$arg" in
    --name=*) NAME="${arg#*=}" ;; --zone=*) ZONE="${arg#*=}" ;; --type=*) TYPE="${arg#*=}" ;;
    --version=*) VERSION="${arg#*=}" ;; --bucket=*) BUCKET="${arg#*=}" ;; --config=*) CONFIG="${arg#*=}" ;;
    --run=*) RUN="${arg#*=}" ;; --dry-run) DRY=1 ;; --keep) KEEP=1 ;;
    *) echo "error: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$BUCKET" ] || { echo "error: give --bucket=BUCKET (holding tensorflow_datasets/; runs go to runs/)" >&2; exit 2; }
RUN="${RUN:-$(basename "${CONFIG%%:*}" .py)}"
run() { echo "+ $*"; [ "$DRY" = 1 ] || "$@"; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARBALL="/tmp/musicrep_jax-$NAME.tar.gz"
SSH=(gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command)
# The code as committed (no .venv, runs or data), from the repository's HEAD.
run git -C "$ROOT" archive --format=tar.gz -o "$TARBALL" HEAD
run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" --version="$VERSION"
if [ "$KEEP" = 0 ] && [ "$DRY" = 0 ]; then
  trap 'gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet' EXIT
fi
run gcloud compute tpus tpu-vm scp --zone="$ZONE" --worker=all "$TARBALL" "$NAME":~/musicrep_jax.tar.gz
# The image's Python is 3.10; uv installs 3.12 (JAX 0.11) without root.
run "${SSH[@]}" "mkdir -p ~/musicrep_jax && tar -xzf ~/musicrep_jax.tar.gz -C ~/musicrep_jax && cd ~/musicrep_jax \
&& curl -LsSf https://astral.sh/uv/install.sh | sh && ~/.local/bin/uv venv --python 3.12 .venv \
&& ~/.local/bin/uv pip install -p .venv -e '.[tpu]' && ~/.local/bin/uv pip install -p .venv --no-deps 'tinysoundfont>=0.3.7,<0.4'"
GCSFUSE_APT='echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -cs) main" | sudo tee /etc/apt/sources.list.d/gcsfuse.list && curl -s https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null && sudo apt-get update -q && sudo apt-get install -yq gcsfuse'
run "${SSH[@]}" "(command -v gcsfuse >/dev/null || { $GCSFUSE_APT; }) && sudo mkdir -p /gcs && sudo chown \$USER /gcs && (mountpoint -q /gcs || gcsfuse --implicit-dirs $BUCKET /gcs) && mkdir -p /gcs/runs"
# jax.distributed.initialize() finds the other workers by itself on Cloud TPU.
run "${SSH[@]}" "cd ~/musicrep_jax && .venv/bin/python -m musicrep_jax.main --config=$CONFIG --workdir=/gcs/runs/$RUN --config.data_dir=gs://$BUCKET/tensorflow_datasets --distributed"
if [ "$KEEP" = 0 ]; then
  [ "$DRY" = 1 ] && echo "+ gcloud compute tpus tpu-vm delete $NAME --zone=$ZONE --quiet   (also on failure)"
fi
echo "results: gs://$BUCKET/runs/$RUN (eval.json, metrics.jsonl, checkpoints/)"
