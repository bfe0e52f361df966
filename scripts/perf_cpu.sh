#!/usr/bin/env bash
# The CPU figures of docs/PERFORMANCE.md, in one run (about 17 minutes on 2 cores).
# Needs the benchmark-only extra: .venv/bin/pip install -e '.[torch]'
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA_DIR=${DATA_DIR:-$HOME/tensorflow_datasets}
lscpu | grep -E "^Model name|^CPU\(s\)"
for preset in smoke default; do
  $PY -m musicrep_jax.tools.perf --preset=$preset --data_dir="$DATA_DIR"
  $PY -m musicrep_jax.tools.perf --preset=$preset --vs-torch --windows=7 --data_dir="$DATA_DIR"
done
# Without the XLA flag that musicrep_jax sets, and with glibc's allocator at its default (the
# commands keep freed memory for reuse, musicrep_jax._tune_malloc).
MUSICREP_JAX_XLA_TUNING=0 $PY -m musicrep_jax.tools.perf --preset=default --vs-torch --windows=7 --data_dir="$DATA_DIR"
MUSICREP_JAX_MALLOC_TUNING=0 $PY -m musicrep_jax.tools.perf --preset=default --vs-torch --windows=7 --data_dir="$DATA_DIR"
