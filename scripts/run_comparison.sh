#!/usr/bin/env bash
# The fair comparison (#26) and the "when" study (#27) on the default preset, in order.
# Every step is resumable: finished runs (their eval.json, committed under docs/results/)
# are reused, an interrupted run resumes from its checkpoint, so rerunning this script on
# any machine continues where the last one stopped. Commit each finished run's small
# files as it completes (git add docs/results/*/runs/*/ of the runs with an eval.json).
#   bash scripts/run_comparison.sh [DATA_DIR]        # about 12-15 hours on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-$HOME/tensorflow_datasets}
PY=${PY:-.venv/bin/python}
bench=("$PY" -m musicrep_jax.tools.bench --preset=default --data_dir="$DATA" --jobs="${JOBS:-2}"
       --tuned=docs/results/tuning/best.json)
# 1. Every family at its tuned setting, 3 seeds, under the common stopping rule.
"${bench[@]}" --configs=tuned --seeds=3 --out=docs/results/tuned
# 2. Convergence: a triplet, a proxy, the best new family and the new family the tuned runs
#    flag as still rising (findings.md), trained longer.
"${bench[@]}" --configs=triplet_dis,proxy_dis,triplet_all_dis,multi_similarity_dis --seeds=3 --nostep_cost \
  --override=train.plateau_patience=6 --override=train.max_reductions=3 \
  --out=docs/results/tuned_longer --convergence=docs/results/tuned
# The comparison's schedule is step 2's (patience 6, 3 lr cuts: step 1's was not converged,
# convergence.md). 2c checks it in turn: a triplet, a proxy and the best new family, trained
# longer again (patience 12, 4 cuts).
longer=(--override=train.plateau_patience=6 --override=train.max_reductions=3)
"${bench[@]}" --configs=triplet_dis,proxy_dis,triplet_all_dis --seeds=3 --nostep_cost \
  --override=train.plateau_patience=12 --override=train.max_reductions=4 \
  --out=docs/results/tuned_check --convergence=docs/results/tuned_longer
# The steps below compare under that schedule: they wait until the check says it is converged.
if [ ! -f docs/results/tuned_check/convergence.md ] ||
   grep -q "not converged\|inconclusive" docs/results/tuned_check/convergence.md; then
  echo "stopped: the comparison's schedule is not converged (docs/results/tuned_check/convergence.md);" \
       "the steps below need the schedule the comparison will use" >&2
  exit 3
fi
# 2d. The final comparison: every family at its tuned setting under that schedule, 3 seeds
#     (the 4 families of step 2 are reused).
"${bench[@]}" --configs=tuned --seeds=3 "${longer[@]}" --out=docs/results/tuned_longer
# 2b. The stopping rule's own effect: the paper's models at their tuned settings, stopped and
#     selected by their own validation loss (the untuned comparison's rule) instead of by
#     validation quality; findings.md of both folders says whether a verdict changes.
"${bench[@]}" --configs=paper --seeds=3 \
  --nostep_cost "${longer[@]}" --override=train.select_by=loss --out=docs/results/tuned_loss_rule
# 3. When does metric learning win: the four other conditions, the same models and settings,
#    and the baselines (random, untrained, log-mel) in each.
for condition in open_set labels_10 labels_30 missing_30; do
  "${bench[@]}" --configs=baselines,triplet_dis,proxy_dis,class_dis,class_vanilla,triplet_all_dis --seeds=3 --nostep_cost \
    --condition="$condition" "${longer[@]}" --out="docs/results/when/$condition"
done
mkdir -p docs/results/when && ln -sfn ../tuned_longer docs/results/when/full  # the full-label condition is step 2d
"$PY" -m musicrep_jax.tools.bench --out=docs/results/when --when
