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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from jigsaw_kit.core.atomic import write_csv
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import nan_mean, summarize
from jigsaw_kit.data.folds import Fold, fold_training_rows, leaked_texts, make_folds, never_used_texts
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.evaluate import curve
from jigsaw_kit.evaluate.aggregate import aggregate

log = logging.getLogger(__name__)


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


@dataclass
class FoldsRun:
    """One pass of CV over every fold (at one share of each fold's labelled rows), fold by fold."""

    oofs: list[pd.DataFrame] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    histories: list[list[dict]] = field(default_factory=list)
    rows_per_rule: list[dict[str, int]] = field(default_factory=list)  # the labelled rows each fold was fitted on
    wall_time_s: float = 0.0


# (fold index, the fold's templated labelled rows) -> the rows to fit on: how the learning curve picks its share
RowsHook = Callable[[int, pd.DataFrame], pd.DataFrame]


def fold_dir_name(fold: str, share: float = 1.0) -> str:
    return fold if share >= 1 else f"{fold}-frac{share:g}"


def cv_folds(cfg: Config, train: pd.DataFrame, test: pd.DataFrame | None, scheme: str, k: int) -> list[Fold]:
    """The scheme's folds, each checked to hold none of its held-out texts in its training rows."""
    folds = make_folds(train, test, scheme=scheme, k=k, seed=cfg.seed)
    for fold in folds:
        leaks = leaked_texts(fold)
        if leaks:  # a bug in folds.py, never the user's fault: refuse to report a leaky score
            raise AssertionError(f"{fold.name}: {len(leaks)} held-out texts leak into training")
    return folds


def run_folds(
    cfg: Config,
    folds: list[Fold],
    scheme: str,
    work_dir: Path,
    keep_models: bool = False,
    share: float = 1.0,
    rows_hook: RowsHook | None = None,
) -> FoldsRun:
    """Fit on each fold's labelled rows (those rows_hook keeps) and score its held-out texts."""
    from jigsaw_kit.pipeline import fit, predict

    run, t0 = FoldsRun(), time.perf_counter()
    at = "" if share >= 1 else f" at {share:g} of the labels"
    for i, fold in enumerate(folds):
        rows = apply_template(fold_training_rows(fold), cfg.template)
        rows = rows_hook(i, rows) if rows_hook else rows
        valid = apply_template(fold.valid, cfg.template)
        fold_dir = work_dir / fold_dir_name(fold.name, share)
        log.info("cv %s %s%s: %d training rows, %d held-out texts over %d rule(s)",
                 scheme, fold.name, at, len(rows), len(valid), valid["rule"].nunique())  # fmt: skip
        result = fit(cfg, rows, fold_dir, unlabelled=valid)  # the held-out rows: a pseudo-label round's
        oof = valid[["rule", "text", "label"]].assign(prediction=predict(fold_dir, cfg, valid), fold=i)
        if fold.part:  # lb-proxy: a text is held out once in each part
            oof["part"] = fold.part
        m = summarize(oof["rule"], oof["label"], oof["prediction"])
        m.update(fold=fold.name, part=fold.part, train_rows=len(rows), train_time_s=result.train_time_s)
        run.oofs.append(oof)
        run.metrics.append(m)
        run.histories.append(result.log_history)
        run.rows_per_rule.append(curve.rows_per_rule(rows))
        log.info("cv %s %s%s: mean_rule_auc %.4f (%d/%d folds, %.0fs so far)",
                 scheme, fold.name, at, m["mean_rule_auc"], i + 1, len(folds), time.perf_counter() - t0)  # fmt: skip
        if not keep_models:
            shutil.rmtree(fold_dir / "model", ignore_errors=True)
            shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
    run.wall_time_s = time.perf_counter() - t0
    return run


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

    fractions (a learning curve): curve.learning_curve then runs CV once per smaller share of each fold's
    labelled rows, through run_folds; metrics gains `learning_curve` and work_dir `learning_curve_oof.csv`.
    The full-data point is the plain run, so oof, the headline and the report do not change.
    """
    t0 = time.perf_counter()
    folds = cv_folds(cfg, train, test, scheme, k)
    shares = curve.shares(fractions)
    _check_fold_dirs(work_dir, [fold_dir_name(f.name, s) for f in folds for s in (*shares, 1.0)])
    plain = run_folds(cfg, folds, scheme, work_dir, keep_models)
    oof = pd.concat(plain.oofs, ignore_index=True)
    metrics: dict[str, Any] = {
        "scheme": scheme,
        "config": cfg.name,
        "folds_k": len(folds),
        "overall": summarize(oof["rule"], oof["label"], oof["prediction"]),
        "folds": plain.metrics,
        "wall_time_s": None,  # set last: the curve's runs count too
    }
    metrics.update(aggregate(plain.metrics))
    # A diagnostic, never the headline: bodies the host never used as examples are label-noisy.
    unused = never_used_texts(train, test)
    metrics["never_used_as_example"] = {
        "n": int(oof["text"].isin(unused).sum()),
        "mean_rule_auc": nan_mean([_subset_auc(o, unused) for _, o in oof.groupby("fold")]),
    }
    if shares:

        def at_share(share: float, hook: RowsHook) -> FoldsRun:
            return run_folds(cfg, folds, scheme, work_dir, share=share, rows_hook=hook)

        weighted = any(f.part for f in folds)
        lc, lc_oof = curve.learning_curve(at_share, plain, shares, cfg.seed, weighted, metrics["mean_rule_auc"])
        metrics["learning_curve"] = lc
        write_csv(lc_oof, Path(work_dir) / "learning_curve_oof.csv")
    metrics["wall_time_s"] = time.perf_counter() - t0
    return oof, metrics, plain.histories


def _subset_auc(oof: pd.DataFrame, texts: set[str]) -> float:
    sub = oof[oof["text"].isin(texts)]
    return summarize(sub["rule"], sub["label"], sub["prediction"])["mean_rule_auc"] if len(sub) else float("nan")


def cross_validate(
    cfg: Config,
    data_dir: str | Path | None,
    scheme: str,
    k: int,
    out_dir: Path,
    report_dir: Path,
    keep_models: bool = False,
    fractions: tuple[float, ...] | None = None,
) -> tuple[dict[str, Any], Path]:
    """`jigsaw-kit cv`: (metrics, report.md) after writing oof.csv, metrics.json, the provenance and the report.

    The output folders and every checkpoint are checked before the data is read, so that a rerun into a used
    folder or a damaged checkpoint fails at start, not after the last fold.
    """
    from jigsaw_kit.data.competition import load_competition
    from jigsaw_kit.pipeline import check_inputs

    check_cv_output(out_dir, report_dir)
    check_inputs(cfg)
    comp = load_competition(data_dir)
    write_provenance(out_dir, cfg, comp, scheme, k)
    oof, metrics, histories = run_cv(cfg, comp.train, comp.test, scheme, k, out_dir, keep_models, fractions)
    return metrics, write_cv(out_dir, report_dir, oof, metrics, histories)


def write_cv(out_dir: Path, report_dir: Path, oof: pd.DataFrame, metrics: dict, histories: list[list[dict]]) -> Path:
    from jigsaw_kit.core.atomic import write_json
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
