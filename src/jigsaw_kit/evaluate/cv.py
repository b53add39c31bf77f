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
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import summarize
from jigsaw_kit.data.folds import LB_WEIGHTS, fold_training_rows, leaked_texts, make_folds, never_used_texts
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.evaluate import curve

log = logging.getLogger(__name__)
FIGURE_KEYS = ("mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1")


# what `cv` writes into --output-dir (its work folder) and into the report folder: replaced on a rerun
CV_FILES = ("oof.csv", "metrics.json", "config.yaml", "versions.json", "data_manifest.json", "learning_curve_oof.csv")


def check_cv_output(out_dir: Path, report_dir: Path) -> None:
    """KitError before any fold trains when reusing an output folder would fail at the end: a folder (or
    anything but a file) where cv writes one of its files."""
    from jigsaw_kit.evaluate.report import FIGURES

    report = ("report.md", curve.FIGURE, *FIGURES.values())
    for d, name in [*((out_dir, n) for n in CV_FILES), *((report_dir, n) for n in report)]:
        p = Path(d) / name
        if p.exists() and not p.is_file():
            raise KitError(
                f"--output-dir {d}: {p} is a folder, where cv writes its {name}. "
                "Remove it or choose another --output-dir."
            )


def _check_fold_dirs(work_dir: Path, names: list[str]) -> None:
    for name in names:
        if (Path(work_dir) / name).exists() and not (Path(work_dir) / name).is_dir():
            raise KitError(
                f"--output-dir {work_dir}: {Path(work_dir) / name} is a file, where cv keeps fold {name}'s model. "
                "Remove it or choose another --output-dir."
            )


def run_cv(
    cfg: Config,
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    scheme: str,
    k: int,
    work_dir: Path,
    keep_models: bool = False,
    fractions: tuple[float, ...] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], list[list[dict]]]:
    """Train and score each fold; returns (oof, metrics, log histories).

    fractions (a learning curve): each fold is also refitted on nested shares of its labelled rows
    (evaluate/curve.py); metrics gains `learning_curve` and work_dir `learning_curve_oof.csv`. The
    full-data point is the plain run, so oof, the headline and the report do not change.
    """
    from jigsaw_kit.pipeline import fit, predict

    fractions = tuple(sorted(set(fractions) | {1.0})) if fractions else (1.0,)
    folds = make_folds(train, test, scheme=scheme, k=k, seed=cfg.seed)
    _check_fold_dirs(work_dir, [f.name if frac >= 1 else f"{f.name}-frac{frac:g}" for f in folds for frac in fractions])
    oofs, histories = [], []
    fold_metrics: dict[float, list[dict]] = {f: [] for f in fractions}
    curve_oofs: list[pd.DataFrame] = []
    frac_time = dict.fromkeys(fractions, 0.0)
    t0 = time.perf_counter()
    for i, fold in enumerate(folds):
        leaks = leaked_texts(fold)
        if leaks:  # a bug in folds.py, never the user's fault: refuse to report a leaky score
            raise AssertionError(f"{fold.name}: {len(leaks)} held-out texts leak into training")
        all_rows = apply_template(fold_training_rows(fold), cfg.template)
        valid = apply_template(fold.valid, cfg.template)
        ranks = curve.subsample_ranks(all_rows, (cfg.seed, i)) if len(fractions) > 1 else None
        for frac in fractions:
            t_frac = time.perf_counter()
            rows = all_rows if frac >= 1 else curve.subsample(all_rows, frac, ranks)
            fold_dir = work_dir / (fold.name if frac >= 1 else f"{fold.name}-frac{frac:g}")
            log.info(
                "cv %s %s%s: %d training rows, %d held-out texts over %d rule(s)",
                scheme,
                fold.name,
                "" if frac >= 1 else f" at {frac:g} of the labels",
                len(rows),
                len(valid),
                valid["rule"].nunique(),
            )
            result = fit(cfg, rows, fold_dir, unlabelled=valid)  # the held-out rows: a pseudo-label round's
            preds = predict(fold_dir, cfg, valid)
            oof = valid[["rule", "text", "label"]].assign(prediction=preds, fold=i)
            if fold.part:  # lb-proxy: a text is held out once in each part
                oof["part"] = fold.part
            m = summarize(oof["rule"], oof["label"], oof["prediction"])
            m.update(fold=fold.name, part=fold.part, train_rows=len(rows), train_time_s=result.train_time_s)
            if len(fractions) > 1:
                m["rows_per_rule"] = curve.rows_per_rule(rows)
                curve_oofs.append(oof.assign(fraction=frac))
            fold_metrics[frac].append(m)
            if frac >= 1:
                oofs.append(oof)
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
            if not keep_models or frac < 1:
                shutil.rmtree(fold_dir / "model", ignore_errors=True)
                shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
            frac_time[frac] += time.perf_counter() - t_frac
    oof = pd.concat(oofs, ignore_index=True)
    full = [{k: v for k, v in m.items() if k != "rows_per_rule"} for m in fold_metrics[1.0]]
    metrics: dict[str, Any] = {
        "scheme": scheme,
        "config": cfg.name,
        "folds_k": len(folds),
        "overall": summarize(oof["rule"], oof["label"], oof["prediction"]),
        "folds": full,
        "wall_time_s": time.perf_counter() - t0,
    }
    metrics.update(_aggregate(full))
    # A diagnostic, never the headline: bodies the host never used as examples are label-noisy.
    unused = never_used_texts(train, test)
    metrics["never_used_as_example"] = {
        "n": int(oof["text"].isin(unused).sum()),
        "mean_rule_auc": _nanmean([_subset_auc(o, unused) for _, o in oof.groupby("fold")]),
    }
    if len(fractions) > 1:
        points = [_curve_point(f, fold_metrics[f], frac_time[f]) for f in fractions]
        weighted = any(f.part for f in folds)
        metrics["learning_curve"] = curve.summarize_curve(points, metrics["mean_rule_auc"], weighted, fractions)
        from jigsaw_kit.core.atomic import write_csv

        write_csv(pd.concat(curve_oofs, ignore_index=True), Path(work_dir) / "learning_curve_oof.csv")
    return oof, metrics, histories


def _aggregate(fold_metrics: list[dict]) -> dict[str, Any]:
    """mean / std over folds and the headline; lb-proxy weighs its parts as the leaderboard weighs its rules."""
    out: dict[str, Any] = {
        "mean": {key: _nanmean([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
        "std": {key: _nanstd([f[key] for f in fold_metrics]) for key in FIGURE_KEYS},
    }
    # The headline: for rule-out each fold is one rule, so the metric is the mean of the fold AUCs.
    out["mean_rule_auc"] = out["mean"]["mean_rule_auc"]
    if any(f["part"] for f in fold_metrics):
        out["parts"] = {p: _part_summary([m for m in fold_metrics if m["part"] == p]) for p in LB_WEIGHTS}
        out["mean_rule_auc"] = sum(w * out["parts"][p]["mean"] for p, w in LB_WEIGHTS.items()) / sum(
            LB_WEIGHTS.values()
        )
    return out


def _curve_point(fraction: float, fold_metrics: list[dict], wall_time_s: float) -> dict[str, Any]:
    """One point of the learning curve: the fraction's headline, parts, per-rule figures and label counts."""
    agg = _aggregate(fold_metrics)
    rules = sorted({r for m in fold_metrics for r in m["rows_per_rule"]})
    counts = {r: _nanmean([m["rows_per_rule"].get(r, 0) for m in fold_metrics]) for r in rules}
    per_rule = _part_summary(fold_metrics)["per_rule"]
    keep = ("fold", "part", "mean_rule_auc", "per_rule", "train_rows", "rows_per_rule")
    return {
        "fraction": fraction,
        "rows_per_rule": counts,
        "rows_per_rule_mean": _nanmean(list(counts.values())),
        "mean_rule_auc": agg["mean_rule_auc"],
        "std": agg["std"]["mean_rule_auc"],
        "spread": curve.spread(fold_metrics),
        "parts": agg.get("parts", {}),
        "per_rule": per_rule,
        "folds": [{k: m[k] for k in keep} for m in fold_metrics],
        "wall_time_s": wall_time_s,
    }


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
    report = write_report(report_dir, oof, metrics, histories, title=title)
    if "learning_curve" in metrics:  # its own section and figure, after the full-data report
        from jigsaw_kit.core.atomic import atomic_path

        lc = metrics["learning_curve"]
        curve.plot(lc, Path(report_dir) / curve.FIGURE, title)
        text = report.read_text(encoding="utf-8") + "\n" + curve.markdown(lc)
        atomic_path(report, lambda t: t.write_text(text, encoding="utf-8"))
    else:  # a curve left by an earlier run in this folder would read as this run's
        (Path(report_dir) / curve.FIGURE).unlink(missing_ok=True)
        (Path(out_dir) / "learning_curve_oof.csv").unlink(missing_ok=True)
    return report


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
