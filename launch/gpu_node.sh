#!/usr/bin/env bash
# Train on one multi-GPU node: install the CUDA build of JAX in .venv and run main
# over all visible GPUs (one process, data parallel over the "data" mesh axis).
#
#   launch/gpu_node.sh --config=configs/proxy_dis.py:paper --data=/shared/tensorflow_datasets \
#       --workdir=/shared/runs/proxy_dis [--gpus=0,1,2,3] [--dataset=synth_music] [--dry-run]
#
# Build the dataset once on shared disk: python -m musicrep_jax.data --dataset=synth_music --data_dir=/shared/tensorflow_datasets
set -euo pipefail
CONFIG=configs/proxy_dis.py:paper; DATA=""; WORKDIR=""; GPUS=""; DRY=0; DATASET=synth_music
for arg in "$@"; do
  case "$arg" in
    --config=*) CONFIG="${arg#*=}" ;; --data=*) DATA="${arg#*=}" ;; --workdir=*) WORKDIR="${arg#*=}" ;;
    --gpus=*) GPUS="${arg#*=}" ;; --dataset=*) DATASET="${arg#*=}" ;; --dry-run) DRY=1 ;;
    *) echo "error: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$DATA" ] && [ -n "$WORKDIR" ] || { echo "error: give --data=DIR and --workdir=DIR" >&2; exit 2; }
run() { echo "+ $*"; [ "$DRY" = 1 ] || "$@"; }
cd "$(dirname "$0")/.."
# uv brings Python 3.12 (JAX 0.11) whatever the node's Python is, without root.
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
[ -x "$UV" ] || run sh -c "curl -LsSf https://astral.sh/uv/install.sh | sh"
run "$UV" venv --allow-existing --python 3.12 .venv
run "$UV" pip install -p .venv -e ".[cuda]"
run "$UV" pip install -p .venv --no-deps "tinysoundfont>=0.3.7,<0.4"
# Build the dataset first if the shared folder lacks it (main would also build it, on one GPU's host).
run .venv/bin/python -m musicrep_jax.data --dataset="$DATASET" --data_dir="$DATA"
ENVV=(env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9)
[ -n "$GPUS" ] && ENVV+=(CUDA_VISIBLE_DEVICES="$GPUS")
run "${ENVV[@]}" .venv/bin/python -m musicrep_jax.main --config="$CONFIG" --workdir="$WORKDIR" --config.data_dir="$DATA"
