"""Honest local cross-validation: one model per leak-free fold, out-of-fold predictions, a report.

    jigsaw-kit cv --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-minilm --scheme novel --folds 5
    jigsaw-kit cv --data-dir ... --config tfidf-lr --scheme rule-out
    jigsaw-kit cv --data-dir ... --config cpu-hybrid --scheme lb-proxy   # weighed as the leaderboard is

Writes oof.csv, metrics.json (the competition metric under `mean_rule_auc`) and per-fold
training logs to runs/<name>/cv/ (or --output-dir), and report.md with figures to runs/<name>/
(or --output-dir).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.config import Config
from jigsaw_kit.core.metrics import summarize
from jigsaw_kit.data.folds import LB_WEIGHTS, fold_training_rows, leaked_texts, make_folds, never_used_texts
from jigsaw_kit.data.prep import apply_template

log = logging.getLogger(__name__)
FIGURE_KEYS = ("mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1")


def run_cv(
    cfg: Config,
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    scheme: str,
    k: int,
    work_dir: Path,
    keep_models: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any], list[list[dict]]]:
    """Train and score each fold; returns (oof, metrics, log histories)."""
    from jigsaw_kit.pipeline import fit, predict

    folds = make_folds(train, test, scheme=scheme, k=k, seed=cfg.seed)
    oofs, fold_metrics, histories = [], [], []
    t0 = time.perf_counter()
    for i, fold in enumerate(folds):
        leaks = leaked_texts(fold)
        if leaks:  # a bug in folds.py, never the user's fault: refuse to report a leaky score
            raise AssertionError(f"{fold.name}: {len(leaks)} held-out texts leak into training")
        rows = apply_template(fold_training_rows(fold), cfg.template)
        valid = apply_template(fold.valid, cfg.template)
        fold_dir = work_dir / fold.name
        log.info(
            "cv %s %s: %d training rows, %d held-out texts over %d rule(s)",
            scheme,
            fold.name,
            len(rows),
            len(valid),
            valid["rule"].nunique(),
        )
        result = fit(cfg, rows, fold_dir)
        preds = predict(fold_dir, cfg, valid)
        oof = valid[["rule", "text", "label"]].assign(prediction=preds, fold=i)
        if fold.part:  # lb-proxy: a text is held out once in each part
            oof["part"] = fold.part
        oofs.append(oof)
        m = summarize(oof["rule"], oof["label"], oof["prediction"])
        m.update(fold=fold.name, part=fold.part, train_rows=len(rows), train_time_s=result.train_time_s)
        fold_metrics.append(m)
        histories.append(result.log_history)
        log.info(
            "cv %s %s: mean_rule_auc %.4f (%d/%d folds, %.0fs so far)",
            scheme,
            fold.name,
            m["mean_rule_auc"],
            i + 1,
            len(folds),
            time.perf_counter() - t0,
        )
        if not keep_models:
            shutil.rmtree(fold_dir / "model", ignore_errors=True)
            shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
    oof = pd.concat(oofs, ignore_index=True)
    metrics: dict[str, Any] = {
        "scheme": scheme,
        "config": cfg.name,
        "folds_k": len(folds),
        "overall": summarize(oof["rule"], oof["label"], oof["prediction"]),
        "folds": fold_metrics,
        "mean": {key: _nanmean([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
        "std": {key: _nanstd([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
        "wall_time_s": time.perf_counter() - t0,
    }
    # The headline: for rule-out each fold is one rule, so the metric is the mean of the fold AUCs.
    metrics["mean_rule_auc"] = metrics["mean"]["mean_rule_auc"]
    if any(f.part for f in folds):  # lb-proxy: weigh the parts as the leaderboard weighs its rules
        metrics["parts"] = {p: _part_summary([m for m in fold_metrics if m["part"] == p]) for p in LB_WEIGHTS}
        metrics["mean_rule_auc"] = sum(w * metrics["parts"][p]["mean"] for p, w in LB_WEIGHTS.items()) / sum(
            LB_WEIGHTS.values()
        )
    # A diagnostic, never the headline: bodies the host never used as examples are label-noisy.
    unused = never_used_texts(train, test)
    metrics["never_used_as_example"] = {
        "n": int(oof["text"].isin(unused).sum()),
        "mean_rule_auc": _nanmean([_subset_auc(o, unused) for _, o in oof.groupby("fold")]),
    }
    return oof, metrics, histories


def _subset_auc(oof: pd.DataFrame, texts: set[str]) -> float:
    sub = oof[oof["text"].isin(texts)]
    return summarize(sub["rule"], sub["label"], sub["prediction"])["mean_rule_auc"] if len(sub) else float("nan")


def _part_summary(fold_metrics: list[dict]) -> dict[str, Any]:
    """Mean ± std over one part's folds, overall and per rule."""
    rules = sorted({r for m in fold_metrics for r in m["per_rule"]})
    per_rule = {}
    for rule in rules:
        aucs = [m["per_rule"][rule]["auc"] for m in fold_metrics if rule in m["per_rule"]]
        per_rule[rule] = {"mean": _nanmean(aucs), "std": _nanstd(aucs)}
    aucs = [m["mean_rule_auc"] for m in fold_metrics]
    return {"mean": _nanmean(aucs), "std": _nanstd(aucs), "folds": len(fold_metrics), "per_rule": per_rule}


def _nanmean(xs: list[float]) -> float:
    a = np.array([x for x in xs if x is not None], dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def _nanstd(xs: list[float]) -> float:
    a = np.array([x for x in xs if x is not None], dtype=float)
    return float(np.nanstd(a)) if np.isfinite(a).any() else float("nan")


def write_cv(out_dir: Path, report_dir: Path, oof: pd.DataFrame, metrics: dict, histories: list[list[dict]]) -> Path:
    from jigsaw_kit.core.atomic import write_csv, write_json
    from jigsaw_kit.evaluate.report import write_report

    write_csv(oof, out_dir / "oof.csv")
    write_json(out_dir / "metrics.json", metrics)
    title = f"jigsaw-kit CV: {metrics['config']} / {metrics['scheme']}"
    return write_report(report_dir, oof, metrics, histories, title=title)


def write_provenance(out_dir: Path, cfg: Config, comp: Any, scheme: str, folds: int) -> None:
    """What a CV score came from, as for a training run: resolved config, library versions, data hashes."""
    from jigsaw_kit.core.atomic import atomic_path, write_json
    from jigsaw_kit.core.config import save_config
    from jigsaw_kit.core.versions import versions

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_path(out_dir / "config.yaml", lambda t: save_config(cfg, t))
    write_json(out_dir / "versions.json", versions())
    manifest = {"data_dir": str(comp.data_dir), "hashes": comp.hashes, "scheme": scheme, "folds": folds}
    write_json(out_dir / "data_manifest.json", manifest)
