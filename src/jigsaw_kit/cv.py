"""Honest local cross-validation: one model per leak-free fold, out-of-fold predictions, a report.

    jigsaw-kit cv --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-minilm --scheme novel --folds 5
    jigsaw-kit cv --data-dir ... --config tfidf-lr --scheme rule-out
    jigsaw-kit cv --data-dir ... --config cpu-hybrid --scheme lb-proxy   # weighed as the leaderboard is

Writes oof.csv, metrics.json (the competition metric under `mean_rule_auc`) and per-fold
training logs to runs/<name>/cv/ (or --output-dir), and report.md with figures to runs/<name>/
(or --output-dir).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config
from .folds import LB_WEIGHTS, SCHEMES, fold_training_rows, leaked_texts, make_folds, never_used_texts
from .metrics import summarize
from .prep import apply_template

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
    from .predict import predict
    from .train import train as train_model

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
        result = train_model(cfg, rows, fold_dir)
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
    from .atomic import write_csv, write_json
    from .report import write_report

    write_csv(oof, out_dir / "oof.csv")
    write_json(out_dir / "metrics.json", metrics)
    title = f"jigsaw-kit CV: {metrics['config']} / {metrics['scheme']}"
    return write_report(report_dir, oof, metrics, histories, title=title)


def _write_provenance(out_dir: Path, cfg: Config, comp: Any, scheme: str, folds: int) -> None:
    """What a CV score came from, as for a training run: resolved config, library versions, data hashes."""
    from .atomic import atomic_path, write_json
    from .config import save_config
    from .train import versions

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_path(out_dir / "config.yaml", lambda t: save_config(cfg, t))
    write_json(out_dir / "versions.json", versions())
    manifest = {"data_dir": str(comp.data_dir), "hashes": comp.hashes, "scheme": scheme, "folds": folds}
    write_json(out_dir / "data_manifest.json", manifest)


def headline(metrics: dict, scheme: str, name: str) -> str:
    """The lines a person reads after a CV run."""
    if "parts" in metrics:
        parts = metrics["parts"]
        lines = [
            f"cv {scheme} ({name}): mean_rule_auc {metrics['mean_rule_auc']:.4f} = "
            + " + ".join(f"{w} x {p} {parts[p]['mean']:.4f}" for p, w in LB_WEIGHTS.items())
            + f" over {sum(LB_WEIGHTS.values())}, {metrics['wall_time_s']:.0f}s"
        ]
        for p in LB_WEIGHTS:
            for rule, r in parts[p]["per_rule"].items():
                lines.append(f"  {p:6s} {r['mean']:.4f} ± {r['std']:.4f}  {rule[:70]}")
    else:
        m, s = metrics["mean"]["mean_rule_auc"], metrics["std"]["mean_rule_auc"]
        lines = [
            f"cv {scheme} ({name}): mean_rule_auc {m:.4f} ± {s:.4f} over {metrics['folds_k']} folds, "
            f"{metrics['wall_time_s']:.0f}s"
        ]
    nu = metrics["never_used_as_example"]
    lines.append(
        f"  diagnostic, {nu['n']} held-out bodies never used as examples (label-noisy): {nu['mean_rule_auc']:.4f}"
    )
    return "\n".join(lines)


def cmd_cv(args: argparse.Namespace) -> int:
    from .cli import _check_writable, _config
    from .data import load_competition
    from .report import console_table

    cfg = _config(args)
    default_root = Path("runs") / cfg.name
    out_dir = Path(args.output_dir) if args.output_dir else default_root / "cv"
    report_dir = Path(args.output_dir) if args.output_dir else default_root
    _check_writable(out_dir, "--output-dir")
    comp = load_competition(args.data_dir)
    _write_provenance(out_dir, cfg, comp, args.scheme, args.folds)
    oof, metrics, histories = run_cv(cfg, comp.train, comp.test, args.scheme, args.folds, out_dir, args.keep_models)
    report = write_cv(out_dir, report_dir, oof, metrics, histories)
    print(console_table(metrics))
    print(headline(metrics, args.scheme, cfg.name))
    print(f"wrote {out_dir}/oof.csv, {out_dir}/metrics.json, {report}")
    return 0


def add_cv_parser(sub: Any) -> None:
    from .cli import _add_config_args

    p = sub.add_parser("cv", help="leak-free cross-validation with out-of-fold predictions and a report")
    p.add_argument("--data-dir", help="competition folder (default: Kaggle mounts, then kagglehub)")
    p.add_argument("--scheme", choices=SCHEMES, default="novel")
    p.add_argument("--folds", type=int, default=5, help="number of folds (ignored by rule-out: one per rule)")
    p.add_argument(
        "--output-dir",
        help="default runs/<config name>/cv (report.md in runs/<config name>); a new run replaces the last",
    )
    p.add_argument("--keep-models", action="store_true", help="keep each fold's fine-tuned model")
    _add_config_args(p)
    p.set_defaults(func=cmd_cv)
