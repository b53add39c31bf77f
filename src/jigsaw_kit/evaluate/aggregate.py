"""Fold metrics to CV figures: mean ± sd over folds, per lb-proxy part and per rule.

One home for the arithmetic both the CV headline (cv.py) and each learning-curve point (curve.py) report.
"""

from __future__ import annotations

from typing import Any

from jigsaw_kit.core.metrics import nan_mean, nan_std
from jigsaw_kit.data.folds import LB_WEIGHTS

FIGURE_KEYS = ("mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1")


def aggregate(fold_metrics: list[dict]) -> dict[str, Any]:
    """mean / std over folds and the headline; lb-proxy weighs its parts as the leaderboard weighs its rules."""
    out: dict[str, Any] = {
        "mean": {key: nan_mean([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
        "std": {key: nan_std([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
    }
    # The headline: for rule-out each fold is one rule, so the metric is the mean of the fold AUCs.
    out["mean_rule_auc"] = out["mean"]["mean_rule_auc"]
    if any(f["part"] for f in fold_metrics):
        out["parts"] = {p: part_summary([m for m in fold_metrics if m["part"] == p]) for p in LB_WEIGHTS}
        out["mean_rule_auc"] = sum(w * out["parts"][p]["mean"] for p, w in LB_WEIGHTS.items()) / sum(
            LB_WEIGHTS.values()
        )
    return out


def part_summary(fold_metrics: list[dict]) -> dict[str, Any]:
    """Mean ± std over one part's folds, overall and per rule."""
    rules = sorted({r for m in fold_metrics for r in m["per_rule"]})
    per_rule = {}
    for rule in rules:
        aucs = [m["per_rule"][rule]["auc"] for m in fold_metrics if rule in m["per_rule"]]
        per_rule[rule] = {"mean": nan_mean(aucs), "std": nan_std(aucs)}
    aucs = [m["mean_rule_auc"] for m in fold_metrics]
    return {"mean": nan_mean(aucs), "std": nan_std(aucs), "folds": len(fold_metrics), "per_rule": per_rule}
