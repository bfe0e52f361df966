#!/usr/bin/env bash
# Epoch wall time of two checkouts side by side: short default-preset trainings
# (--mode=train, no evaluation), alternating A, B, A, B..., on the same data. Prints each
# run's median epoch time (epochs 1 on: epoch 0 compiles) and CPU time, then the median
# ratio B/A. For a lever that changes no number (the runs' metrics.jsonl curves must be
# the same): it checks that the two checkouts give the same validation figures.
#   bash scripts/bench_epochs.sh OLD_TREE NEW_TREE [CONFIG] [EPOCHS] [ROUNDS] [DATA_DIR]
#   e.g. git worktree add /tmp/old HEAD~1 && bash scripts/bench_epochs.sh /tmp/old . proxy_dis 8 2
set -euo pipefail
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd)
CONFIG=${3:-proxy_dis}; EPOCHS=${4:-8}; ROUNDS=${5:-2}; DATA=${6:-$HOME/tensorflow_datasets}
PY=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
out=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for side in A B; do
    tree=$A; [ "$side" = B ] && tree=$B
    work="$out/$side$r"
    start=$(date +%s.%N)
    cpu=$( { /usr/bin/time -f "%U %S" bash -c "cd '$tree' && '$PY' -m musicrep_jax.main --mode=train \
        --config='$tree/configs/$CONFIG.py' --workdir='$work' --config.data_dir='$DATA' \
        --config.train.max_epochs=$EPOCHS --config.train.plateau_patience=$EPOCHS > '$work.log' 2>&1"; } 2>&1 )
    wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
    python3 - "$work/metrics.jsonl" "$side" "$r" "$wall" "$cpu" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "epoch_time_s" in l]
times = [r["epoch_time_s"] for r in rows[1:]]
user, system = map(float, sys.argv[5].split())
print(f"{sys.argv[2]} round {sys.argv[3]}: median epoch {statistics.median(times):.2f} s (epochs 1-{len(rows) - 1}), "
      f"run {sys.argv[4]} s wall, {user + system:.0f} CPU-s", flush=True)
EOF
  done
done
python3 - "$out" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def run(side, r):
  rows = [json.loads(l) for l in open(f"{out}/{side}{r}/metrics.jsonl") if "epoch_time_s" in l]
  return statistics.median(x["epoch_time_s"] for x in rows[1:]), [(x["val_loss"], x.get("val_quality")) for x in rows]
ratios = [run("B", r)[0] / run("A", r)[0] for r in range(1, rounds + 1)]
same = all(run("A", r)[1] == run("B", r)[1] for r in range(1, rounds + 1))
print(f"median epoch time B/A: {statistics.median(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)}); "
      f"validation figures {'identical' if same else 'DIFFERENT'} in every round")
EOF
rm -rf "$out"
