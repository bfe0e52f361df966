#!/usr/bin/env bash
# The levers of #30 against make run's model: make run's config (default preset, proxy_dis,
# untuned) and the same with each lever, 2 seeds each, trained on synth_music 1.1 (or, for
# the timbres lever, its tracks rendered with three soundfonts in turn). Resumable (bench).
# Then the table (real-audio benchmark, held-out soundfont, synth test): scripts/lever_table.py.
#   bash scripts/fetch_soundfonts.sh ~/soundfonts && bash scripts/fetch_unlabelled_music.sh ~/unlabelled_music
#   bash scripts/run_real_audio_levers.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-$HOME/tensorflow_datasets}
PY=${PY:-.venv/bin/python}
SF=${SOUNDFONTS:-$HOME/soundfonts}
UNLABELLED=${UNLABELLED:-$HOME/unlabelled_music}  # scripts/fetch_unlabelled_music.sh
timbres=--override=soundfont=default,$SF/sf_GMbank.sf2,$SF/OPL-3_FM_128M.sf2
bench=("$PY" -m musicrep_jax.tools.bench --preset=default --data_dir="$DATA" --jobs="${JOBS:-1}"
       --configs=proxy_dis --seeds=2 --nostep_cost)
"${bench[@]}" --out=docs/results/levers/default
"${bench[@]}" --override=augment.enabled=True --out=docs/results/levers/augment
"${bench[@]}" "$timbres" --out=docs/results/levers/timbres
"${bench[@]}" --override=unlabelled.folder="$UNLABELLED" --out=docs/results/levers/unlabelled
"${bench[@]}" "$timbres" --override=augment.enabled=True --out=docs/results/levers/augment_timbres
# Does the schedule hold the levers back? One seed of the default and of augment at patience 12
# (the comparison's step-2c schedule).
p12=(--override=train.plateau_patience=12 --override=train.max_reductions=4 --override=train.max_epochs=400)
"${bench[@]/--seeds=2/--seeds=1}" "${p12[@]}" --out=docs/results/levers/p12_default
"${bench[@]/--seeds=2/--seeds=1}" "${p12[@]}" --override=augment.enabled=True --out=docs/results/levers/p12_augment
