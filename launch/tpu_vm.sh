#!/usr/bin/env bash
# Train on a Cloud TPU VM (one host or a pod slice): create the VM, copy the code, install
# on every worker, mount the bucket, run main on all workers, delete the VM.
#
#   launch/tpu_vm.sh --name=mrj --zone=us-central2-b --type=v4-8 --bucket=BUCKET \
#       --config=configs/proxy_dis.py:paper [--run=proxy_dis] [--spot [--max-attempts=20]] \
#       [--gcs-direct] [--dry-run] [--keep]
#
# --spot: Spot capacity through a queued resource (much cheaper; Google may reclaim it at
# any time). When the slice is preempted, every worker gets SIGTERM, all of them save the
# same step and exit (143); the script then deletes the queued resource, requests a new
# one, reinstalls and reruns the same command, which resumes the run from its workdir;
# it repeats until the run finishes or --max-attempts requests were made.
# --gcs-direct: the run writes straight to gs://BUCKET/runs/RUN (Orbax, TensorBoard and
# the run's JSON files all write to GCS); no gcsfuse mount.
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
CONFIG=configs/proxy_dis.py:paper; RUN=""; DRY=0; KEEP=0; SPOT=0; ATTEMPTS=20; DIRECT=0
for arg in "$@"; do
  case "$arg" in
    --name=*) NAME="${arg#*=}" ;; --zone=*) ZONE="${arg#*=}" ;; --type=*) TYPE="${arg#*=}" ;;
    --version=*) VERSION="${arg#*=}" ;; --bucket=*) BUCKET="${arg#*=}" ;; --config=*) CONFIG="${arg#*=}" ;;
    --run=*) RUN="${arg#*=}" ;; --dry-run) DRY=1 ;; --keep) KEEP=1 ;; --spot) SPOT=1 ;;
    --max-attempts=*) ATTEMPTS="${arg#*=}" ;; --gcs-direct) DIRECT=1 ;;
    *) echo "error: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$ATTEMPTS" =~ ^[1-9][0-9]*$ ]] || { echo "error: --max-attempts=$ATTEMPTS must be a positive integer" >&2; exit 2; }
[ -n "$BUCKET" ] || { echo "error: give --bucket=BUCKET (holding tensorflow_datasets/; runs go to runs/)" >&2; exit 2; }
RUN="${RUN:-$(basename "${CONFIG%%:*}" .py)}"
run() { echo "+ $*"; [ "$DRY" = 1 ] || "$@"; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARBALL="/tmp/musicrep_jax-$NAME.tar.gz"
SSH=(gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command)
# The code as committed (no .venv, runs or data), from the repository's HEAD.
run git -C "$ROOT" archive --format=tar.gz -o "$TARBALL" HEAD
if [ "$DIRECT" = 1 ]; then WORKDIR="gs://$BUCKET/runs/$RUN"; else WORKDIR="/gcs/runs/$RUN"; fi

request() {  # an on-demand VM, or (--spot) a queued resource for Spot capacity, then wait for it
  if [ "$SPOT" = 0 ]; then
    run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" --version="$VERSION"
    return
  fi
  run gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME" --zone="$ZONE" \
    --accelerator-type="$TYPE" --runtime-version="$VERSION" --spot
  echo "+ wait until: gcloud compute tpus queued-resources describe $NAME --zone=$ZONE --format='value(state.state)' is ACTIVE"
  [ "$DRY" = 1 ] && return
  while true; do
    state=$(gcloud compute tpus queued-resources describe "$NAME" --zone="$ZONE" --format='value(state.state)')
    case "$state" in
      ACTIVE) return ;;
      FAILED|SUSPENDED) echo "error: the queued resource $NAME is $state (no Spot capacity granted)" >&2; return 1 ;;
    esac
    sleep 60
  done
}

release() {  # deletes the VM (or the queued resource and its VM)
  if [ "$SPOT" = 1 ]; then
    run gcloud compute tpus queued-resources delete "$NAME" --zone="$ZONE" --force --quiet
  else
    run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet
  fi
}

preempted() {  # true when the slice was taken back (its state says so, or it is gone)
  local state
  state=$(gcloud compute tpus tpu-vm describe "$NAME" --zone="$ZONE" --format='value(state)' 2>/dev/null || echo GONE)
  case "$state" in PREEMPTED|TERMINATED|GONE) return 0 ;; *) return 1 ;; esac
}

install_and_train() {
  run gcloud compute tpus tpu-vm scp --zone="$ZONE" --worker=all "$TARBALL" "$NAME":~/musicrep_jax.tar.gz
  # The image's Python is 3.10; uv installs 3.12 (JAX 0.11) without root.
  run "${SSH[@]}" "mkdir -p ~/musicrep_jax && tar -xzf ~/musicrep_jax.tar.gz -C ~/musicrep_jax && cd ~/musicrep_jax \
&& curl -LsSf https://astral.sh/uv/install.sh | sh && ~/.local/bin/uv venv --python 3.12 .venv \
&& ~/.local/bin/uv pip install -p .venv -e '.[tpu]' && ~/.local/bin/uv pip install -p .venv --no-deps 'tinysoundfont>=0.3.7,<0.4'"
  if [ "$DIRECT" = 0 ]; then
    GCSFUSE_APT='echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -cs) main" | sudo tee /etc/apt/sources.list.d/gcsfuse.list && curl -s https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null && sudo apt-get update -q && sudo apt-get install -yq gcsfuse'
    run "${SSH[@]}" "(command -v gcsfuse >/dev/null || { $GCSFUSE_APT; }) && sudo mkdir -p /gcs && sudo chown \$USER /gcs && (mountpoint -q /gcs || gcsfuse --implicit-dirs $BUCKET /gcs) && mkdir -p /gcs/runs"
  fi
  # jax.distributed.initialize() finds the other workers by itself on Cloud TPU. A rerun
  # of this command resumes the run from its newest complete checkpoint.
  run "${SSH[@]}" "cd ~/musicrep_jax && .venv/bin/python -m musicrep_jax.main --config=$CONFIG --workdir=$WORKDIR --config.data_dir=gs://$BUCKET/tensorflow_datasets --distributed"
}

if [ "$KEEP" = 0 ] && [ "$DRY" = 0 ]; then
  trap release EXIT
fi
attempt=1
while true; do
  request
  status=0
  install_and_train || status=$?
  [ "$status" = 0 ] && break
  [ "$SPOT" = 1 ] && sleep 60  # a preempted slice takes a moment to show as PREEMPTED
  if [ "$SPOT" = 1 ] && [ "$attempt" -lt "$ATTEMPTS" ] && { [ "$status" = 143 ] || preempted; }; then
    echo "attempt $attempt: the slice was preempted (exit $status); requesting Spot capacity again" >&2
    release
    attempt=$((attempt + 1))
    continue
  fi
  echo "error: training failed with exit status $status on attempt $attempt (see the output above)" >&2
  exit "$status"
done
if [ "$SPOT" = 1 ] && [ "$DRY" = 1 ]; then
  echo "+ on preemption (exit 143, or the slice PREEMPTED/gone), up to --max-attempts=$ATTEMPTS requests:"
  echo "+   delete the queued resource, request it again, reinstall, rerun the same command (it resumes)"
fi
if [ "$KEEP" = 0 ] && [ "$DRY" = 1 ]; then
  echo "+ $(if [ "$SPOT" = 1 ]; then echo "gcloud compute tpus queued-resources delete $NAME --zone=$ZONE --force --quiet"; else echo "gcloud compute tpus tpu-vm delete $NAME --zone=$ZONE --quiet"; fi)   (also on failure)"
fi
echo "results: $WORKDIR (eval.json, metrics.jsonl, checkpoints/)$([ "$DIRECT" = 0 ] && echo " = gs://$BUCKET/runs/$RUN")"
