"""Comparison tables and plots from the eval.json files of several runs.

Training cost is counted in two ways that do not depend on what else the machine was
doing while a model trained: steps to the best validation loss x FLOPs per step (XLA's
cost analysis of the compiled step), and steps to best x seconds per step measured for
all models in one process in alternating windows (`perf --step_cost_json`). The
wall-time ratio of the runs themselves is shown beside them. The cost to reach a target
(95% of the best model's best validation ROC-AUC) is the MLPerf-style time-to-quality.
"""

from __future__ import annotations

import json
import os

import numpy as np

from musicrep_jax.losses import l2_normalize

from musicrep_jax.data.features import CATEGORIES
from musicrep_jax.evaluate import flatten

def columns(cats) -> dict:
  """Table columns of a dataset with these categories: column -> (name of the number in
  evaluate.flatten(eval.json), scale)."""
  return {
      "train_time_s": ("train_time_s", 1), "eval_time_s": ("eval_time_s", 1), "epochs": ("epochs", 1),
      "time_per_epoch_s": ("time_per_epoch_s", 1),
      "steps_to_best": ("steps_to_best", 1), "steps_run": ("steps_run", 1), "gflop_per_step": ("flops_per_step", 1e-9),
      **{f"R@{k}": (f"recall_at_k/{k}", 100) for k in ("1", "2", "4", "8")},
      **{f"chance_R@{k}": (f"recall_at_k_chance/{k}", 100) for k in ("1", "2", "4", "8")},
      "P@1": ("precision_at_1", 100), "R_precision": ("r_precision", 100), "MAP@R": ("map_at_r", 100),
      "norm_mean": ("embedding_stats/norm_mean", 1), "norm_cv": ("embedding_stats/norm_cv", 1),
      "mean_cosine": ("embedding_stats/mean_pairwise_cosine", 1),
      "roc_auc": ("roc_auc", 1), "pr_auc": ("pr_auc", 1),
      **{f"auc_{c}": (f"roc_auc_per_category/{c}", 1) for c in cats},
      **{f"tag_{space}_{c}": (f"triplet_acc/{space}/{c}", 1) for space in ("complete", "subspace")
         for c in (*cats, "overall")},
      "track_triplet": ("track_triplet_acc", 1),
      **{f"factor_{c}": (f"factor_triplet_acc/{c}", 1) for c in (*cats, "overall")},
      **{f"factor_sub_{c}": (f"factor_triplet_acc_subspace/{c}", 1) for c in (*cats, "overall")},
      **{f"factor_se_{c}": (f"factor_triplet_acc_se/{c}", 1) for c in (*cats, "overall")},
      **{f"factor_sub_se_{c}": (f"factor_triplet_acc_subspace_se/{c}", 1) for c in (*cats, "overall")},
      **{f"shortcut_{s}_{c}": (f"shortcut_auc/{s}/{c}", 1) for s in ("complete", *cats) for c in cats},
      "human_triplet": ("human_triplet_acc", 1),
  }


def categories_of(results: dict[str, list[dict]]) -> tuple[str, ...]:
  """The categories of the runs' dataset, in order (from the first run's per-category
  figures; synth_music's four when no run has them)."""
  for runs in results.values():
    for r in runs:
      for figures in (r.get("roc_auc_per_category"), (r.get("triplet_acc") or {}).get("complete")):
        if figures:
          return tuple(c for c in figures if c != "overall")
  return tuple(CATEGORIES)


def _stat(values):
  vals = [v for v in values if v is not None]
  if not vals:
    return None, None
  return float(np.mean(vals)), float(np.std(vals)) if len(vals) > 1 else None


def _get(flat: dict, name: str, scale: float):
  v = flat.get(name)
  return None if v is None else scale * v


def validation_curve(workdir: str) -> list[tuple[int, float]]:
  """[(step, validation ROC-AUC)] of a run's epochs, from its metrics.jsonl."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [(l["step"], l["val_roc_auc"]) for l in map(json.loads, f) if l.get("val_roc_auc") is not None]


def quality_curve(workdir: str) -> list[tuple[int, float]]:
  """[(step, validation quality)] of a run's epochs: the common figure of the stopping rule
  (the mean of validation recall@1 and ROC-AUC; computed for runs that predate it)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [l for l in map(json.loads, f) if l.get("val_roc_auc") is not None]
  return [(l["step"], l.get("val_quality", (l["val_recall_at_1"] + l["val_roc_auc"]) / 2)) for l in lines]


def _curve_panels(rows: list[dict], workdirs: dict[str, list[str]], path: str, x_of, xlabel: str) -> None:
  """One panel per model: every seed's validation quality against x_of(step, row)."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  if not rows:
    return
  ncols = min(4, len(rows))
  nrows = -(-len(rows) // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.5 * nrows), squeeze=False, sharey=True)
  for ax, r in zip(axes.flat, rows):
    for seed, workdir in enumerate(workdirs[r["model"]]):
      curve = quality_curve(workdir)
      ax.plot([x_of(s, r) for s, _ in curve], [q for _, q in curve], linewidth=1, label=f"seed {seed}")
    ax.set_title(r["model"], fontsize=9)
    ax.grid(alpha=0.3)
  for ax in axes.flat[len(rows):]:
    ax.axis("off")
  for ax in axes[:, 0]:
    ax.set_ylabel("validation quality", fontsize=8)
  for ax in axes[-1]:
    ax.set_xlabel(xlabel, fontsize=8)
  fig.suptitle("Validation quality (mean of validation R@1 and ROC-AUC) per epoch, every seed")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _first_reaching(curve, target):
  return next((step for step, auc in curve if auc is not None and auc >= target), None)


def summarise(results: dict[str, list[dict]], step_seconds: dict[str, float] | None = None,
              curves: dict[str, list[list]] | None = None) -> list[dict]:
  """One row per config: mean (and std over seeds) of every reported number, and the
  training costs. results: {config: [eval.json (+ flops_per_step) per seed]};
  step_seconds: {config: measured seconds per step}; curves: {config: [[(step, val
  ROC-AUC) per epoch] per seed]}."""
  step_seconds, curves = step_seconds or {}, curves or {}
  cats = categories_of(results)
  best_auc = [np.mean([max(a for _, a in c) for c in cs if c]) for cs in curves.values() if any(cs)]
  target = 0.95 * max(best_auc) if best_auc else None
  rows = []
  for name, runs in results.items():
    flats = [flatten(r) for r in runs]
    row = {"model": name, "seeds": len(runs), "categories": cats}
    for column, (key, scale) in columns(cats).items():
      row[column], row[column + "_std"] = _stat([_get(f, key, scale) for f in flats])
    row["time_to_best_s"], row["time_to_best_s_std"] = _stat([
        f["epochs"] * f["time_per_epoch_s"] if f.get("epochs") and f.get("time_per_epoch_s") else None
        for f in flats])
    row["eval_share"], row["eval_share_std"] = _stat([  # of the run's training and evaluation time
        f["eval_time_s"] / (f["eval_time_s"] + f["train_time_s"]) if f.get("eval_time_s") and f.get("train_time_s")
        else None for f in flats])
    gflop = [f["steps_to_best"] * f["flops_per_step"] / 1e9 if f.get("steps_to_best") and f.get("flops_per_step")
             else None for f in flats]
    row["gflop_to_best"], row["gflop_to_best_std"] = _stat(gflop)
    sec = step_seconds.get(name)
    row["step_s"] = sec
    row["s_to_best"], row["s_to_best_std"] = _stat([f.get("steps_to_best") * sec if sec and f.get("steps_to_best")
                                                    else None for f in flats])
    if target is not None:
      reached = [(_first_reaching(c, target), f.get("flops_per_step")) for c, f in zip(curves.get(name, []), flats)]
      row["gflop_to_target"], row["gflop_to_target_std"] = _stat([s * fl / 1e9 for s, fl in reached if s and fl])
      row["reached_target"] = sum(1 for s, _ in reached if s)
      row["target_auc"] = target
    rows.append(row)
  for key in ("time_to_best_s", "gflop_to_best", "s_to_best"):  # ratios to the cheapest trained model
    known = [r[key] for r in rows if r.get(key)]
    for r in rows:  # baselines are not trained: no cost
      r[key + "_ratio"] = r[key] / min(known) if r.get(key) and known else None
  for r in rows:
    r["time_ratio"] = r["time_to_best_s_ratio"]
  return rows


def _num(v, digits=2):
  return "-" if v is None else f"{v:.{digits}f}"


def _pct(row, key):
  v, s = row.get(key), row.get(key + "_std")
  return "-" if v is None else f"{100 * v:.0f}%" + (f" ± {100 * s:.0f}" if s is not None else "")


def _fmt(row, key, digits=3):
  v, s = row.get(key), row.get(key + "_std")
  if v is None:
    return "-"
  return f"{v:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def markdown(rows: list[dict], command: str, seeds: int, missing: list[str] = ()) -> str:
  cats = rows[0]["categories"] if rows else tuple(CATEGORIES)
  out = [f"Made by `{command}`" + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else "") + ".", ""]
  if missing:
    out += [f"**PARTIAL: {len(missing)} run(s) missing** ({', '.join(missing)}); a row's mean and std are over "
            "the seeds it has (column `seeds` of table.csv).", ""]
  out += ["### Training cost (the paper's Table 1)", "",
          "Steps to the best validation loss (of steps run) x cost per step, as a ratio to the cheapest model: "
          "in FLOPs (XLA's cost analysis), in seconds per step measured for all models in one process "
          "(alternating windows), and the runs' own wall time (noisy: other work shares the machine). "
          "Cost to target: GFLOP until the validation ROC-AUC first reaches the target (runs that reached it). "
          "Evaluation: its share of the run's training and evaluation time.", "",
          "| model | steps to best / run | GFLOP / step | cost ratio (FLOPs) | s / step | cost ratio (s) | "
          "wall-time ratio | GFLOP to target | evaluation |",
          "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    target = (f"{_fmt(r, 'gflop_to_target', 0)} ({r.get('reached_target', 0)}/{r['seeds']})"
              if r.get("target_auc") is not None and r.get("gflop_per_step") is not None else "-")
    out.append(f"| {r['model']} | {_fmt(r, 'steps_to_best', 0)} / {_fmt(r, 'steps_run', 0)} | "
               f"{_fmt(r, 'gflop_per_step', 2)} | {_num(r.get('gflop_to_best_ratio'))} | {_num(r.get('step_s'), 3)} | "
               f"{_num(r.get('s_to_best_ratio'))} | {_num(r.get('time_ratio'))} | {target} | "
               f"{_pct(r, 'eval_share')} |")
  if rows and rows[0].get("target_auc") is not None:
    out += ["", f"Target: validation ROC-AUC {rows[0]['target_auc']:.3f} (95% of the best model's best)."]
  chance = next((r for r in rows if r.get("chance_R@1") is not None), None)
  out += ["", "### Retrieval and tagging (the paper's Table 3)", "",
          "Recall@K as the paper defines it (%), precision@1, R-precision and MAP@R (Musgrave et al. 2020; "
          "relevant: shares a tag, %), macro ROC-AUC and PR-AUC. Chance: the exact expected recall@K of "
          "random neighbours on the same test split.", "",
          "| model | R@1 | R@2 | R@4 | R@8 | P@1 | R-prec | MAP@R | ROC-AUC | PR-AUC |",
          "|---|---|---|---|---|---|---|---|---|---|"]
  if chance:
    out.append("| chance (exact) | " + " | ".join(_fmt(chance, f"chance_R@{k}", 1) for k in (1, 2, 4, 8))
               + " | - | - | - | 0.500 | - |")
  for r in rows:
    out.append(f"| {r['model']} | " + " | ".join(_fmt(r, f"R@{k}", 1) for k in (1, 2, 4, 8))
               + f" | {_fmt(r, 'P@1', 1)} | {_fmt(r, 'R_precision', 1)} | {_fmt(r, 'MAP@R', 1)}"
               + f" | {_fmt(r, 'roc_auc')} | {_fmt(r, 'pr_auc')} |")
  out += ["", "### The embedding's geometry", "",
          "Norm mean and coefficient of variation, and the mean cosine between two test tracks (1: all one "
          "direction). Retrieval above uses config.eval.distance.", "",
          "| model | norm mean | norm CV | mean pairwise cosine |", "|---|---|---|---|"]
  for r in rows:
    out.append(f"| {r['model']} | {_fmt(r, 'norm_mean', 2)} | {_fmt(r, 'norm_cv')} | {_fmt(r, 'mean_cosine')} |")
  out += ["", "### ROC-AUC per category", "", "| model | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
  for r in rows:
    out.append(f"| {r['model']} | " + " | ".join(_fmt(r, f"auc_{c}") for c in cats) + " |")
  out += ["", "### Triplet prediction (the paper's Table 4)", "",
          "Tag triplets in the complete space / in the category's subspace (disentangled models only), "
          "and track triplets.", "",
          "| model | " + " | ".join(f"{c} (full / sub)" for c in (*cats, "overall")) + " | track |",
          "|---|" + "---|" * (len(cats) + 2)]
  for r in rows:
    cells = [f"{_fmt(r, f'tag_complete_{c}')} / {_fmt(r, f'tag_subspace_{c}')}" for c in (*cats, "overall")]
    cells += [_fmt(r, "track_triplet")]
    out.append(f"| {r['model']} | " + " | ".join(cells) + " |")
  if any(r.get("factor_overall") is not None for r in rows):
    out += ["", "### Factor-controlled triplets (synth_music)", "",
            "Accuracy in the complete space / in the category's subspace; [se] is the binomial standard "
            "error of one run (mean over runs when there are several seeds).", "",
            "| model | " + " | ".join(f"{c} (full / sub)" for c in (*cats, "overall")) + " |",
            "|---|" + "---|" * (len(cats) + 1)]
    for r in rows:
      cells = [f"{_fmt(r, f'factor_{c}')} [{_fmt(r, f'factor_se_{c}')}] / {_fmt(r, f'factor_sub_{c}')}"
               + (f" [{_fmt(r, f'factor_sub_se_{c}')}]" if r.get(f"factor_sub_se_{c}") is not None else "")
               for c in (*cats, "overall")]
      out.append(f"| {r['model']} | " + " | ".join(cells) + " |")
  if any(r.get(f"shortcut_complete_{cats[0]}") is not None for r in rows):
    out += ["", "### Shortcut probe", "",
            "ROC-AUC of each category's tags scored by cosine to validation prototypes inside one space "
            "(rows: the space; a disentangled subspace should be high on its own category, near 0.5 elsewhere).", "",
            "| model | space | " + " | ".join(cats) + " |", "|---|---|" + "---|" * len(cats)]
    for r in rows:
      for space in ("complete", *cats):
        if r.get(f"shortcut_{space}_{cats[0]}") is not None:
          out.append(f"| {r['model']} | {space} | " + " | ".join(_fmt(r, f"shortcut_{space}_{c}") for c in cats)
                     + " |")
  if any(r.get("human_triplet") is not None for r in rows):
    out += ["", "| model | human triplets |", "|---|---|"] + [f"| {r['model']} | {_fmt(r, 'human_triplet')} |" for r in rows]
  return "\n".join(out) + "\n"


def _bars(ax, labels, series: dict, ylabel):
  x = np.arange(len(labels))
  width = 0.8 / max(len(series), 1)
  for i, (name, vals) in enumerate(series.items()):
    ax.bar(x + i * width - 0.4 + width / 2, [v if v is not None else 0 for v in vals], width, label=name)
  ax.set_xticks(x, labels, rotation=30, ha="right")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=7)


def plots(rows: list[dict], workdirs: dict[str, list[str]], out: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = [r["model"] for r in rows]
  cats = rows[0]["categories"] if rows else tuple(CATEGORIES)

  fig, axes = plt.subplots(1, 2, figsize=(12, 4))
  _bars(axes[0], names, {f"R@{k}": [r[f"R@{k}"] for r in rows] for k in (1, 2, 4, 8)}, "recall@K (%)")
  _bars(axes[1], names, {"ROC-AUC": [r["roc_auc"] for r in rows], "PR-AUC": [r["pr_auc"] for r in rows]}, "AUC")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "retrieval_tagging.png"), dpi=100)
  plt.close(fig)

  fig, axes = plt.subplots(1, 3, figsize=(16, 4))
  for ax, prefix, title in zip(axes, ("tag_complete", "tag_subspace", "factor_sub"),
                               ("tag triplets, complete space", "tag triplets, subspace",
                                "factor triplets, subspace")):
    _bars(ax, names, {c: [r[f"{prefix}_{c}"] for r in rows] for c in cats}, "accuracy")
    ax.set_title(title)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "triplets.png"), dpi=100)
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(7, 4))
  ax.bar(names, [r["gflop_to_best_ratio"] or 0 for r in rows])
  ax.set_ylabel("FLOPs to best validation loss / cheapest")
  ax.tick_params(axis="x", rotation=30)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "time_ratio.png"), dpi=100)
  plt.close(fig)

  trained = [r for r in rows if r.get("gflop_per_step")]
  _curve_panels(trained, workdirs, os.path.join(out, "training_curves.png"), lambda step, r: step, "training step")
  _curve_panels(trained, workdirs, os.path.join(out, "quality_vs_cost.png"),
                lambda step, r: step * r["gflop_per_step"], "training cost (GFLOP)")

  fig, axes = plt.subplots(len(names), len(cats), figsize=(3 * len(cats), 2.6 * len(names)), squeeze=False)
  for i, name in enumerate(names):
    path = os.path.join(workdirs[name][0], "test_embeddings.npz")
    if not os.path.exists(path):
      continue
    d = np.load(path)
    for j, c in enumerate(cats):
      ax = axes[i, j]
      sub = d["embeddings"][:, d["dims"] == j] if d["disentangled"] else d["embeddings"]
      sub = l2_normalize(sub)
      centred = sub - sub.mean(0)
      _, _, vt = np.linalg.svd(centred, full_matrices=False)
      xy = centred @ vt[:2].T
      tags = d["labels"][:, d["tag_category"] == j]
      colour = np.where(tags.any(1), tags.argmax(1), -1)
      ax.scatter(xy[:, 0], xy[:, 1], c=colour, s=4, cmap="tab10")
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(c)
      if j == 0:
        ax.set_ylabel(name, fontsize=8)
  fig.suptitle("PCA of each category's subspace (complete space for entangled models), coloured by that category's tag")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "subspaces.png"), dpi=80)
  plt.close(fig)
