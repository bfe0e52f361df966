#!/usr/bin/env bash
# Runs per hour of `bench` on the default preset (#28 item 3): the same 4 runs (proxy_dis and
# triplet_dis, 2 seeds, 6 epochs each, no step-cost pass) trained
#   jobs1   one at a time                          (bench --jobs=1)
#   jobs2   two side by side                       (bench --jobs=2)
#   pinned  two side by side, each pinned to one CPU (two bench commands under taskset)
# Prints each mode's wall time and completed runs per hour, then whether each mode's
# numbers are those of jobs1 (scripts/compare_runs.py). Stop other work first.
#   bash scripts/bench_jobs.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/bench_jobs}
PY=${PY:-.venv/bin/python}
rm -rf "$OUT" && mkdir -p "$OUT"
common=(--seeds=2 --override=train.max_epochs=6 --nostep_cost)
timed() {  # name, command...
  local name=$1; shift
  local start=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  local end=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]:<8} {s:5.0f} s  {4*3600/s:5.1f} runs/hour')" "$start" "$end" "$name"
}
pinned() {
  taskset -c 0 "$PY" -m musicrep_jax.tools.bench --out="$OUT/pinned" --configs=proxy_dis "${common[@]}" > "$OUT/pinned_a.log" 2>&1 &
  local a=$!
  taskset -c 1 "$PY" -m musicrep_jax.tools.bench --out="$OUT/pinned" --configs=triplet_dis "${common[@]}" > "$OUT/pinned_b.log" 2>&1
  wait $a
}
"$PY" -m musicrep_jax.tools.bench --out="$OUT/warmup" --configs=proxy_dis,triplet_dis --override=train.max_epochs=1 \
  --nostep_cost > "$OUT/warmup.log" 2>&1  # compiles (or loads) every program first
timed jobs1 "$PY" -m musicrep_jax.tools.bench --out="$OUT/jobs1" --configs=proxy_dis,triplet_dis "${common[@]}"
timed jobs2 "$PY" -m musicrep_jax.tools.bench --out="$OUT/jobs2" --configs=proxy_dis,triplet_dis "${common[@]}" --jobs=2
timed pinned pinned
for mode in jobs2 pinned; do
  echo "$mode against jobs1:"; "$PY" scripts/compare_runs.py "$OUT/jobs1/runs" "$OUT/$mode/runs" | grep -v '^    ' || true
done
