#!/usr/bin/env bash
# Copies the small files of every finished bench run (eval.json, train_summary.json,
# metrics.jsonl, config.json, tags.json, distances.json, train.log) and the tables from a bench --out folder into a
# folder that is committed (never checkpoints): a later `bench --out=DEST` on a fresh
# clone counts those runs as finished and trains only the rest.
#   scripts/sync_results.sh /tmp/bench_out docs/results/default
set -euo pipefail
src=${1:?bench --out folder}; dst=${2:?destination}
mkdir -p "$dst/runs"
for run in "$src"/runs/*/; do
  name=$(basename "$run")
  [ -f "$run/eval.json" ] || continue
  mkdir -p "$dst/runs/$name"
  for f in eval.json train_summary.json metrics.jsonl config.json tags.json distances.json train.log; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dst/runs/$name/"
  done
done
for f in table.md table.csv findings.md step_cost.json "$src"/*.png; do
  [ -f "$src/$(basename "$f")" ] && cp "$src/$(basename "$f")" "$dst/"
done
echo "synced $(ls "$dst/runs" | wc -l) finished runs into $dst"
