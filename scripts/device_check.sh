#!/usr/bin/env bash
# The one prepared device check for a GPU machine (issues #7, #8): the paper preset's train
# step for proxy_dis and triplet_dis, with examples/s, compile time, FLOPs per example
# (XLA's cost analysis), achieved FLOP/s, peak device memory, an MFU estimate, and the
# examples/s ratio against the PyTorch twin.
#
#   bash scripts/device_check.sh                 # paper preset, bfloat16, on the GPU
#   PRESET=smoke DTYPE=float32 bash scripts/device_check.sh   # a dry run of the script on CPU
#
# Builds the default synth_music (about 1 minute on 16 cores) into $DATA_DIR. Set
# PEAK_TFLOPS to the card's dense bf16 peak for the MFU line (H200 SXM: 989).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${PRESET:-paper}"; DTYPE="${DTYPE:-bfloat16}"; DATA_DIR="${DATA_DIR:-/tmp/tfds}"
PEAK_TFLOPS="${PEAK_TFLOPS:-989}"; OUT="${OUT:-/tmp}"
PY=.venv/bin/python
if ! $PY -c "import musicrep_jax, jax" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e ".[cuda]"
  .venv/bin/pip install -q --no-deps "tinysoundfont>=0.3.7,<0.4"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi (CPU run)"
$PY -c "import jax, sys; print('python', sys.version.split()[0], 'jax', jax.__version__, jax.devices())"
DATASET=synth_music; [ "$PRESET" = smoke ] && DATASET=synth_music:smoke
$PY -m musicrep_jax.data --dataset="$DATASET" --data_dir="$DATA_DIR" 2>&1 | tail -2
.venv/bin/python -m musicrep_jax.tools.perf --preset="$PRESET" --configs=proxy_dis,triplet_dis --windows=5 --steps=10 \
    --override=model.dtype="$DTYPE" --data_dir="$DATA_DIR" --peak_tflops="$PEAK_TFLOPS" 2>&1 \
    | grep -v "^[IW][0-9]\|^WARNING" | tee "$OUT/device_check.txt"
# JAX against the PyTorch twin (issue #7), when torch with CUDA is installed (.[torch]).
if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() or '$PRESET' == 'smoke' else 1)" 2>/dev/null; then
  .venv/bin/python -m musicrep_jax.tools.perf --preset="$PRESET" --configs=proxy_dis,triplet_dis --windows=5 --steps=10 \
      --override=model.dtype="$DTYPE" --data_dir="$DATA_DIR" --vs-torch 2>&1 \
      | grep -v "^[IW][0-9]\|^WARNING" | tee -a "$OUT/device_check.txt"
else
  echo "no CUDA PyTorch here: pip install -e '.[torch]' for the --vs-torch comparison"
fi
