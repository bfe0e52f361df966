"""The paper's findings tested over seeds: for each, paired differences (same seed, two
models, or two spaces of one model), their mean and standard deviation, a paired t-test
and a verdict.

A verdict is "reproduces" when every pair behind a finding differs in the paper's
direction with p < 0.05 (two-sided paired t-test over seeds), "does not reproduce" when
every pair differs significantly the other way, and "inconclusive" otherwise (too few
seeds, mixed or non-significant differences). With three seeds a paired t-test has two
degrees of freedom: only large, consistent differences pass.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Finding:
  claim: str
  metric: str  # a name of evaluate.flatten(eval.json), or "log_gflop_to_best"
  pairs: tuple  # ((A, B), ...): the claim says A > B on the metric (B may be a second metric of A: "A:metric")
  scale: float = 1.0
  margin: float | None = None  # a "costs little" claim: A - B < margin (scaled units)


PAPER = (
    Finding("Metric learning costs more training: log(FLOPs to the best validation loss), triplet over "
            "classification (paper: 1.87-3.05x, log 0.63-1.12)", "log_gflop_to_best",
            (("triplet", "class"), ("triplet_dis", "class_dis"), ("triplet_paper", "class"),
             ("triplet_dis_paper", "class_dis"))),
    Finding("Classification and proxy models beat triplets on retrieval (R@1, points)", "recall_at_k/1",
            (("proxy", "triplet"), ("class", "triplet"), ("proxy_dis", "triplet_dis"), ("class_dis", "triplet_dis"),
             ("proxy_dis", "triplet_dis_paper"), ("class_dis", "triplet_dis_paper")), scale=100),
    Finding("... and on auto-tagging (ROC-AUC)", "roc_auc",
            (("proxy", "triplet"), ("class", "triplet"), ("proxy_dis", "triplet_dis"), ("class_dis", "triplet_dis"),
             ("proxy_dis", "triplet_dis_paper"), ("class_dis", "triplet_dis_paper"))),
    Finding("Disentangled subspaces beat the complete space on tag triplets (same model)",
            "triplet_acc/subspace/overall",
            (("triplet_dis", "triplet_dis:triplet_acc/complete/overall"),
             ("proxy_dis", "proxy_dis:triplet_acc/complete/overall"),
             ("class_dis", "class_dis:triplet_acc/complete/overall"),
             ("triplet_dis_paper", "triplet_dis_paper:triplet_acc/complete/overall"))),
    Finding("Disentanglement costs little in retrieval: entangled minus disentangled R@1 below "
            "2 points (the 95% interval's upper end)", "recall_at_k/1",
            (("proxy", "proxy_dis"), ("class", "class_dis"), ("triplet", "triplet_dis")), scale=100, margin=2.0),
    Finding("Vanilla classification falls behind the normalised one in retrieval (cosine R@1)", "recall_at_k/1",
            (("class", "class_vanilla"),), scale=100),
    Finding("Track regularisation helps track triplets", "track_triplet_acc",
            (("triplet_dis_track", "triplet_dis"), ("triplet_dis_track_paper", "triplet_dis_paper"))),
)

MODERN_PAIR_BASED = ("triplet_all_dis", "multi_similarity_dis", "supcon_dis")  # no proxies, no classifier
_MODERN_VS_CLASSIFICATION = tuple((m, o) for m in MODERN_PAIR_BASED for o in ("proxy_dis", "class_dis"))
EXTENDED = (
    Finding("Proxy-NCA against the sigmoid proxy loss on retrieval (R@1)", "recall_at_k/1",
            (("proxy_nca", "proxy"), ("proxy_nca_dis", "proxy_dis")), scale=100),
    Finding("Batch-hard triplets against label-conditioned triplets on retrieval (R@1)", "recall_at_k/1",
            (("triplet_bh", "triplet"), ("triplet_bh_dis", "triplet_dis"), ("triplet_bh_soft_dis", "triplet_dis"),
             ("triplet_bh_soft_dis", "triplet_all_dis")), scale=100),
    # The question of #26 after tuning: today's pair-based metric learning (each family at its
    # tuned setting) against the disentangled proxy and classification models.
    Finding("Today's pair-based metric learning beats proxy and classification on retrieval (R@1)", "recall_at_k/1",
            _MODERN_VS_CLASSIFICATION, scale=100),
    Finding("... and on auto-tagging (ROC-AUC)", "roc_auc", _MODERN_VS_CLASSIFICATION),
)


# The claim of the paper's abstract: "deep metric learning exhibits better performance
# for triplet prediction" (its Table 4: triplet_dis 0.792 in the subspaces against 0.738
# proxy_dis and 0.737 class_dis), on the paper's tag triplets and on the generator's
# factor-controlled triplets, in the complete space and in the category subspaces.
TRIPLET_METRICS = (("tag triplets, complete space", "triplet_acc/complete/overall"),
                   ("tag triplets, category subspaces", "triplet_acc/subspace/overall"),
                   ("factor triplets, complete space", "factor_triplet_acc/overall"),
                   ("factor triplets, category subspaces", "factor_triplet_acc_subspace/overall"))


def triplet_claim(metric_models=("triplet_dis", "triplet_dis_paper"), others=("proxy_dis", "class_dis")) -> tuple:
  """The paper's triplet-prediction claim as findings: every metric-learning model
  (the paper's triplet models, and the best tuned metric-learning model where given)
  against every proxy / classification model, one finding per kind of triplet."""
  pairs = tuple((m, o) for m in dict.fromkeys(metric_models) for o in others)
  return tuple(Finding(f"Metric learning beats proxy and classification at triplet prediction: {label}", metric, pairs)
               for label, metric in TRIPLET_METRICS)


def still_rising(curves: dict[str, list[list[tuple[int, float]]]], window: int = 6) -> list[dict]:
  """Was a model stopped while its validation quality still rose? For each model: per
  seed, the rise over its last epochs (`window`, 6 by default) projected from a least-squares line
  (slope x window), against the seed-to-seed standard deviation of the best validation
  quality. A model is "still rising" when its mean rise exceeds that noise.

  curves: {model: [[(step, validation quality) per epoch] per seed]}.
  """
  rows = []
  for name, per_seed in curves.items():
    rises, bests = [], []
    for curve in per_seed:
      q = np.array([v for _, v in curve], float)
      if len(q) < 3:
        continue
      tail = q[-window:]
      slope = np.polyfit(np.arange(len(tail)), tail, 1)[0]
      rises.append(float(slope * len(tail)))
      bests.append(float(q.max()))
    if not rises:
      continue
    noise = float(np.std(bests, ddof=1)) if len(bests) > 1 else None
    rows.append({"model": name, "rise": float(np.mean(rises)), "max_rise": float(np.max(rises)), "noise": noise,
                 "still_rising": None if noise is None else bool(np.mean(rises) > noise), "seeds": len(rises)})
  return rows


def still_rising_markdown(rows: list[dict]) -> str:
  lines = ["| model | rise over the last 6 epochs (mean, max over seeds) | seed sd of the best | still rising? |",
           "|---|---|---|---|"]
  for r in rows:
    noise = "-" if r["noise"] is None else f"{r['noise']:.4f}"
    verdict = "-" if r["still_rising"] is None else ("**yes**" if r["still_rising"] else "no")
    lines.append(f"| {r['model']} | {r['rise']:+.4f}, {r['max_rise']:+.4f} | {noise} | {verdict} |")
  return "\n".join(lines) + "\n"


# "When does metric learning win?" (#27): per condition, metric learning minus
# classification on the figures of that condition (the held-out tags' for open_set).
WHEN_METRICS = {
    "default": (("R@1", "recall_at_k/1", 100), ("tag triplets", "triplet_acc/complete/overall", 1),
                ("ROC-AUC", "roc_auc", 1)),
    "open_set": (("R@1, held-out tags", "open_recall_at_k/1", 100),
                 ("tag triplets, held-out tags", "open_triplet_acc/complete/overall", 1),
                 ("5-shot ROC-AUC, held-out tags", "few_shot_roc_auc/5", 1)),
}
WHEN_PAIRS = (("triplet_dis", "class_dis"), ("triplet_dis", "proxy_dis"), ("triplet_dis", "class_vanilla"))


def when(runs_by_condition: dict[str, dict[str, dict[int, dict]]], pairs=WHEN_PAIRS) -> list[dict]:
  """One row per (condition, metric, pair): the paired difference metric learning minus
  classification over seeds, its mean, sd, paired-test p and verdict ("wins", "loses",
  "inconclusive"). runs_by_condition: {condition: {config: {seed: flattened eval.json}}}."""
  rows = []
  for condition, runs in runs_by_condition.items():
    for label, metric, scale in WHEN_METRICS.get(condition, WHEN_METRICS["default"]):
      for a, b in pairs:
        seeds, d = paired(runs, a, b, metric)
        if not seeds:
          continue
        p, verdict = paired_test(d)
        rows.append({"condition": condition, "metric": label, "a": a, "b": b, "seeds": seeds,
                     "mean": float(d.mean()) * scale, "sd": float(d.std(ddof=1)) * scale if len(d) > 1 else None,
                     "p": p, "verdict": {"reproduces": "wins", "does not reproduce": "loses"}.get(verdict, verdict)})
  return rows


def when_markdown(rows: list[dict]) -> str:
  """One table: conditions as rows; for each figure (R@1, tag triplets, ROC-AUC: the
  held-out tags' figures in the open_set row) and pair, mean ± sd of A - B over seeds,
  the paired p and the verdict."""
  pairs = list(dict.fromkeys((r["a"], r["b"]) for r in rows))
  by_key = {(r["condition"], r["metric"], r["a"], r["b"]): r for r in rows}

  def cell(r):
    if r is None:
      return "-"
    sd = f" ± {r['sd']:.3g}" if r["sd"] is not None else ""
    p = f", p {r['p']:.2g}" if r["p"] is not None else ""
    return f"{r['mean']:+.3g}{sd}{p}: {r['verdict']}"

  head = [f"{label} {a} - {b}" for label, _, _ in WHEN_METRICS["default"] for a, b in pairs]
  lines = ["| condition | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
  for condition in dict.fromkeys(r["condition"] for r in rows):
    metrics = WHEN_METRICS.get(condition, WHEN_METRICS["default"])
    cells = [cell(by_key.get((condition, label, a, b))) for label, _, _ in metrics for a, b in pairs]
    lines.append(f"| {condition} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


# The dataset control: the same disentangled models on two datasets (synth_music's
# correlated tags against :decorrelated), compared metric by metric over seeds.
CONTROL_MODELS = ("proxy_dis", "class_dis", "triplet_dis", "triplet_dis_paper")
CONTROL_METRICS = (
    ("shortcut_leak", "shortcut leak: mean ROC-AUC of the other categories' tags in each subspace"),
    ("shortcut_own", "each subspace's ROC-AUC on its own category's tags (mean over categories)"),
    ("shortcut_auc/instrument/genre", "genre tags scored in the instrument subspace (ROC-AUC)"),
    ("factor_triplet_acc_subspace/instrument", "instrument factor triplets in the instrument subspace"),
    ("factor_triplet_acc_subspace/overall", "factor triplets in the category's subspace, all categories"),
)


def _value(flat: dict, metric: str):
  if metric in ("shortcut_leak", "shortcut_own"):  # the off-diagonal / diagonal of the shortcut probe
    cats = sorted({k.split("/")[2] for k in flat if k.startswith("shortcut_auc/")})  # the dataset's categories
    cells = [flat.get(f"shortcut_auc/{s}/{c}") for s in cats for c in cats
             if (s == c) == (metric == "shortcut_own")]
    return float(np.mean(cells)) if cells and None not in cells else None
  if metric == "log_gflop_to_best":
    steps, flops = flat.get("steps_to_best"), flat.get("flops_per_step")
    return math.log(steps * flops / 1e9) if steps and flops else None
  return flat.get(metric)


def paired(runs: dict[str, dict[int, dict]], a: str, b: str, metric: str) -> tuple[list[int], np.ndarray]:
  """(seeds, A - B per seed) over the seeds both have; `b` may be "config:metric"."""
  b_name, b_metric = (b.split(":", 1) + [metric])[:2]
  seeds, diffs = [], []
  for seed in sorted(set(runs.get(a, {})) & set(runs.get(b_name, {}))):
    va, vb = _value(runs[a][seed], metric), _value(runs[b_name][seed], b_metric)
    if va is not None and vb is not None:
      seeds.append(seed)
      diffs.append(va - vb)
  return seeds, np.array(diffs, float)


def paired_test(diffs: np.ndarray, margin: float | None = None) -> tuple[float | None, str]:
  """(p of the two-sided paired t-test, verdict) for the differences A - B: the claim is
  A > B, or with `margin` that A - B < margin (the 95% t-interval of the mean difference
  below the margin: reproduces; entirely at or above it: does not)."""
  if len(diffs) < 2:
    return None, "inconclusive"
  if margin is not None:
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    p = float(stats.ttest_1samp(diffs, 0.0).pvalue) if diffs.std() > 0 else None
    if diffs.mean() + half < margin:
      return p, "reproduces"
    return p, "does not reproduce" if diffs.mean() - half >= margin else "inconclusive"
  if np.all(diffs == diffs[0]):
    p = 0.0 if diffs[0] != 0 else 1.0
  else:
    p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
  if p < ALPHA:
    return p, "reproduces" if diffs.mean() > 0 else "does not reproduce"
  return p, "inconclusive"


def evaluate(runs: dict[str, dict[int, dict]], findings=PAPER) -> list[dict]:
  """One dict per finding: its pairs' statistics and the finding's verdict."""
  out = []
  for f in findings:
    rows = []
    for a, b in f.pairs:
      seeds, d = paired(runs, a, b, f.metric)
      if not seeds:
        continue
      p, verdict = paired_test(d, None if f.margin is None else f.margin / f.scale)
      label = f"{a}: {f.metric.split('/')[1]} - {b.split('/')[1]}" if ":" in b else f"{a} - {b}"
      rows.append({"a": a, "b": b, "label": label, "seeds": seeds, "mean": float(d.mean()) * f.scale,
                   "sd": float(d.std(ddof=1)) * f.scale if len(d) > 1 else None, "p": p, "verdict": verdict,
                   "same_sign": int(max((d > 0).sum(), (d < 0).sum()))})
    verdicts = {r["verdict"] for r in rows}
    verdict = verdicts.pop() if len(verdicts) == 1 and rows else "inconclusive"
    out.append({"claim": f.claim, "metric": f.metric, "pairs": rows, "verdict": verdict})
  return out


def markdown(results: list[dict]) -> str:
  lines = ["| finding | A - B (paired over seeds) | mean ± sd | same sign | p | pair verdict |",
           "|---|---|---|---|---|---|"]
  for i, r in enumerate(results, 1):
    head = f"{i}. {r['claim']}: **{r['verdict']}**"
    if not r["pairs"]:
      lines.append(f"| {head} | no finished pair | | | | |")
    for j, p in enumerate(r["pairs"]):
      sd = f" ± {p['sd']:.3g}" if p["sd"] is not None else ""
      pval = f"{p['p']:.3g}" if p["p"] is not None else "-"
      lines.append(f"| {head if j == 0 else ''} | {p['label']} | {p['mean']:+.3g}{sd} | "
                   f"{p['same_sign']}/{len(p['seeds'])} | {pval} | {p['verdict']} |")
  return "\n".join(lines) + "\n"


def welch_p(a, b) -> float | None:
  """Two-sided p of Welch's unequal-variance t-test of mean(a) = mean(b) (two datasets
  are not paired by seed); None with fewer than two values on a side or no spread."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or len(b) < 2 or a.std() + b.std() == 0:
    return None
  return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def control(runs_a: dict[str, dict[int, dict]], runs_b: dict[str, dict[int, dict]], names=CONTROL_MODELS,
            metrics=CONTROL_METRICS) -> list[dict]:
  """One dict per (metric, model) that both sets of runs have: mean and sd over seeds on
  each dataset, the difference A - B and Welch's p."""
  rows = []
  for metric, label in metrics:
    for name in names:
      va = [v for v in (_value(f, metric) for f in runs_a.get(name, {}).values()) if v is not None]
      vb = [v for v in (_value(f, metric) for f in runs_b.get(name, {}).values()) if v is not None]
      if va and vb:
        rows.append({"metric": metric, "label": label, "model": name, "a": va, "b": vb,
                     "diff": float(np.mean(va) - np.mean(vb)), "p": welch_p(va, vb)})
  return rows


def control_markdown(rows: list[dict], a: str, b: str) -> str:
  def cell(v):
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
  lines = [f"| metric | model | {a} (seeds) | {b} (seeds) | difference | Welch p |", "|---|---|---|---|---|---|"]
  for i, r in enumerate(rows):
    head = r["label"] if i == 0 or rows[i - 1]["metric"] != r["metric"] else ""
    p = f"{r['p']:.2g}" if r["p"] is not None else "-"
    lines.append(f"| {head} | {r['model']} | {cell(r['a'])} ({len(r['a'])}) | {cell(r['b'])} ({len(r['b'])}) | "
                 f"{r['diff']:+.3f} | {p} |")
  return "\n".join(lines) + "\n"


# The convergence check (#26): the test figures of the same models trained longer.
CONVERGENCE_METRICS = (("roc_auc", "test ROC-AUC"), ("recall_at_k/1", "test R@1"))


def convergence(shipped: dict[str, dict[int, dict]], longer: dict[str, dict[int, dict]],
                metrics=CONVERGENCE_METRICS) -> list[dict]:
  """One dict per (model, metric) with at least one seed in both sets: the seeds both have,
  the paired difference longer - shipped (mean over those seeds), the seed-to-seed sd of
  the shipped runs, and the verdict: "converged" when |mean difference| <= that sd,
  "not converged" when it exceeds it, "inconclusive" with fewer than 2 shared seeds (no sd)."""
  rows = []
  for name in sorted(set(shipped) & set(longer)):
    seeds = sorted(set(shipped[name]) & set(longer[name]))
    for metric, label in metrics:
      pairs = [(_value(shipped[name][s], metric), _value(longer[name][s], metric)) for s in seeds]
      pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
      if not pairs:
        continue
      a, b = np.array(pairs).T
      diff = float(np.mean(b - a))
      sd = float(np.std(a, ddof=1)) if len(a) > 1 else None
      verdict = "inconclusive" if sd is None else ("converged" if abs(diff) <= sd else "not converged")
      rows.append({"model": name, "metric": metric, "label": label, "seeds": len(pairs), "shipped": a.tolist(),
                   "longer": b.tolist(), "diff": diff, "sd": sd, "verdict": verdict})
  return rows


def convergence_markdown(rows: list[dict]) -> str:
  lines = ["| model | figure | seeds | as trained | trained longer | paired difference | seed sd | verdict |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    sd = f"{r['sd']:.4f}" if r["sd"] is not None else "-"
    lines.append(f"| {r['model']} | {r['label']} | {r['seeds']} | {np.mean(r['shipped']):.4f} | "
                 f"{np.mean(r['longer']):.4f} | {r['diff']:+.4f} | {sd} | {r['verdict']} |")
  return "\n".join(lines) + "\n"
