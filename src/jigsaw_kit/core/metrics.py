"""Scores for rule-violation predictions. The only module that computes AUC.

The competition metric is the mean over rules of each rule's ROC AUC: only the ranking
*within* a rule matters, so calibration across rules is irrelevant. A rule whose rows hold
a single class has no defined AUC; it is reported as NaN and left out of the mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score, roc_curve


def rule_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of one group, or NaN when the group holds a single class."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))


def per_rule_auc(rules: Any, labels: Any, scores: Any) -> pd.DataFrame:
    """One row per rule: rule, n, positives, auc (NaN where undefined)."""
    df = pd.DataFrame({"rule": list(rules), "label": np.asarray(labels), "score": np.asarray(scores, dtype=float)})
    out = []
    for rule, g in df.groupby("rule", sort=True):
        out.append(
            {
                "rule": rule,
                "n": len(g),
                "positives": int(g["label"].sum()),
                "auc": rule_auc(g["label"].to_numpy(), g["score"].to_numpy()),
            }
        )
    return pd.DataFrame(out, columns=["rule", "n", "positives", "auc"])


def mean_rule_auc(rules: Any, labels: Any, scores: Any) -> float:
    """The competition metric: mean of per-rule AUCs over rules where it is defined."""
    table = per_rule_auc(rules, labels, scores)
    defined = table["auc"].dropna()
    return float(defined.mean()) if len(defined) else float("nan")


def pooled_auc(labels: Any, scores: Any) -> float:
    """One AUC over all rows, ignoring rules (not the competition metric: for comparison)."""
    return rule_auc(np.asarray(labels), np.asarray(scores, dtype=float))


def roc_points(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) for plotting a ROC curve; empty arrays for a single-class group."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return np.array([]), np.array([])
    fpr, tpr, _ = roc_curve(labels, np.asarray(scores, dtype=float))
    return fpr, tpr


def summarize(rules: Any, labels: Any, probs: Any) -> dict[str, Any]:
    """Every figure the kit reports for one set of predictions (probabilities of a violation)."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(probs, dtype=float)
    # AUCs rank the raw scores: clipping would tie confident predictions (and any score outside
    # [0, 1], such as a blend's rank sum). Only the log loss needs probabilities kept off 0 and 1.
    table = per_rule_auc(rules, labels, scores)
    probs = np.clip(scores, 1e-7, 1 - 1e-7)
    hard = (probs >= 0.5).astype(int)
    two_classes = len(np.unique(labels)) == 2
    return {
        "mean_rule_auc": mean_rule_auc(rules, labels, scores),
        "pooled_auc": pooled_auc(labels, scores),
        "per_rule": {
            r["rule"]: {"n": int(r["n"]), "positives": int(r["positives"]), "auc": _none_if_nan(r["auc"])}
            for r in table.to_dict("records")
        },
        "log_loss": float(log_loss(labels, probs, labels=[0, 1])) if len(labels) else float("nan"),
        "accuracy": float(accuracy_score(labels, hard)) if len(labels) else float("nan"),
        "f1": float(f1_score(labels, hard, zero_division=0)) if two_classes else float("nan"),
        "n": int(len(labels)),
    }


def nan_mean(xs: Any) -> float:
    """Mean over the defined values (None and NaN left out, as a single-class rule's AUC is); NaN when none is."""
    a = np.array([x for x in xs if x is not None], dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def nan_std(xs: Any) -> float:
    """Population sd (ddof 0, as CV reports its spread over folds) of the defined values; NaN when none is."""
    a = np.array([x for x in xs if x is not None], dtype=float)
    return float(np.nanstd(a)) if np.isfinite(a).any() else float("nan")


def _none_if_nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
