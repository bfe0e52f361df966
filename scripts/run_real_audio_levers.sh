#!/usr/bin/env bash
# The levers of #30 against make run's model: make run's config (default preset, proxy_dis,
# untuned) and the same with each lever, 2 seeds each, on synth_music 1.1. Resumable (bench).
# Then: the real-audio benchmark (docs/REAL_AUDIO.md) and the held-out-soundfont evaluation
# of every run (scripts/eval_levers.sh).
#   bash scripts/run_real_audio_levers.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-$HOME/tensorflow_datasets}
PY=${PY:-.venv/bin/python}
bench=("$PY" -m musicrep_jax.tools.bench --preset=default --data_dir="$DATA" --jobs="${JOBS:-1}"
       --configs=proxy_dis --seeds=2 --nostep_cost)
"${bench[@]}" --out=docs/results/levers/default
"${bench[@]}" --override=augment.enabled=True --out=docs/results/levers/augment
