"""Human-readable results: a markdown report with PNG figures, and a compact console table.

Every AUC shown here comes from `jigsaw_kit.metrics`, so the report can never disagree with
the numbers the kit logs. Figures use matplotlib's Agg backend so this works on headless
machines (Kaggle, CI).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from jigsaw_kit.core import metrics as M
from jigsaw_kit.core.atomic import atomic_path
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.folds import LB_WEIGHTS

THRESHOLD = 0.5
DPI = 100
HEADLINE_KEYS = ("mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1")
OOF_COLUMNS = ("rule", "text", "label", "prediction", "fold")
FIGURES = {
    "roc": "roc_per_rule.png",
    "confusion": "confusion_matrix.png",
    "loss": "loss_curves.png",
    "hist": "score_hist.png",
}


# ----------------------------------------------------------------------------- helpers


def _is_missing(x: Any) -> bool:
    """True for None and NaN: JSON round-trips turn NaN into None, so treat both alike."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _fmt(x: Any, missing: str = "n/a", digits: int = 4) -> str:
    return missing if _is_missing(x) else f"{float(x):.{digits}f}"


def _shorten(text: Any, width: int = 40) -> str:
    """Rules are long sentences; legends and tables need a recognisable prefix only."""
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1].rstrip() + "…"


def _md_cell(text: Any, width: int | None = None) -> str:
    """Make arbitrary comment text safe inside one markdown table cell (no broken rows, no math/HTML)."""
    s = str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if width is not None and len(s) > width:
        s = s[: width - 1].rstrip() + "…"
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("$", "\\$").replace("<", "&lt;")


def _mpl_text(text: str) -> str:
    """Escape `$` so a rule mentioning money is not parsed as mathtext by matplotlib."""
    return text.replace("$", r"\$")


def _normalize_metrics(metrics: dict | None) -> dict[str, Any]:
    """Accept both a cross-validation dict and a bare summarize() dict from a single run."""
    metrics = dict(metrics or {})
    if "mean_rule_auc" in metrics and "folds" not in metrics:  # a single summarize() dict (a CV dict has folds)
        return {"overall": metrics, "folds": [], "mean": None, "std": None}
    folds = [f for f in (metrics.get("folds") or []) if isinstance(f, dict)]
    mean, std = metrics.get("mean"), metrics.get("std")
    if folds and (not mean or not std):
        # Fall back to computing them from the fold dicts (nan-aware, population std).
        mean = mean or {}
        std = std or {}
        for key in HEADLINE_KEYS:
            vals = [None if _is_missing(f.get(key)) else float(f[key]) for f in folds]
            mean.setdefault(key, M.nan_mean(vals))
            std.setdefault(key, M.nan_std(vals))
    return {
        "overall": metrics.get("overall"),
        "folds": folds,
        "mean": mean if folds or mean else None,
        "std": std if folds or std else None,
        "scheme": metrics.get("scheme"),
        "config": metrics.get("config"),
        "wall_time_s": metrics.get("wall_time_s"),
        "parts": metrics.get("parts"),
        "headline": metrics.get("mean_rule_auc"),
        "never_used": metrics.get("never_used_as_example"),
    }


def _check_oof(oof: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in OOF_COLUMNS if c not in oof.columns]
    if missing:
        raise KitError(
            f"out-of-fold predictions lack column(s) {missing}; expected {list(OOF_COLUMNS)} (got {list(oof.columns)})"
        )
    if len(oof) == 0:
        raise KitError("out-of-fold predictions are empty: nothing to report (did training run on any fold?)")
    df = oof.copy()
    df["label"] = df["label"].astype(int)
    df["prediction"] = df["prediction"].astype(float)
    return df


# ----------------------------------------------------------------------------- figures


def _plot_roc(oof: pd.DataFrame, path: Path) -> None:
    table = M.per_rule_auc(oof["rule"], oof["label"], oof["prediction"])
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        for row in table.itertuples(index=False):
            g = oof[oof["rule"] == row.rule]
            fpr, tpr = M.roc_points(g["label"], g["prediction"])
            label = _mpl_text(f"{_shorten(row.rule)} (AUC {_fmt(row.auc, 'undefined', 3)})")
            if len(fpr):
                ax.plot(fpr, tpr, lw=1.8, label=label)
            else:  # single-class rule: keep it in the legend so it is not silently dropped
                ax.plot([], [], lw=1.8, ls=":", label=label)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
        ax.set_title("ROC per rule (out-of-fold)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_path(path, lambda t: fig.savefig(t, dpi=DPI, format="png"))
    finally:
        plt.close(fig)


def _confusion_counts(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """2x2 counts, rows = true label, cols = predicted label at THRESHOLD."""
    hard = (probs >= THRESHOLD).astype(int)
    cm = np.zeros((2, 2), dtype=int)
    for t in (0, 1):
        for p in (0, 1):
            cm[t, p] = int(np.sum((labels == t) & (hard == p)))
    return cm


def _plot_confusion(oof: pd.DataFrame, path: Path) -> None:
    cm = _confusion_counts(oof["label"].to_numpy(), oof["prediction"].to_numpy())
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    try:
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
        for t in (0, 1):
            for p in (0, 1):
                dark = cm[t, p] > cm.max() / 2
                ax.text(
                    p, t, f"{cm[t, p]:,}", ha="center", va="center", fontsize=14, color="white" if dark else "black"
                )
        ax.set_xticks([0, 1], ["pred 0\n(ok)", "pred 1\n(violation)"])
        ax.set_yticks([0, 1], ["true 0\n(ok)", "true 1\n(violation)"])
        ax.set_title(f"confusion matrix at threshold {THRESHOLD}")
        fig.tight_layout()
        atomic_path(path, lambda t: fig.savefig(t, dpi=DPI, format="png"))
    finally:
        plt.close(fig)


def _plot_loss(log_histories: list[list[dict]], path: Path) -> bool:
    """Plot train/eval loss per fold; return False (and write nothing) if no loss was logged."""
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, history in enumerate(log_histories):
            color = colors[i % len(colors)]
            train = [(e["step"], e["loss"]) for e in history or [] if "loss" in e and "step" in e]
            evals = [(e["step"], e["eval_loss"]) for e in history or [] if "eval_loss" in e and "step" in e]
            if train:
                xs, ys = zip(*train)
                ax.plot(xs, ys, color=color, lw=1.5, label=f"fold {i} train")
                drawn = True
            if evals:
                xs, ys = zip(*evals)
                ax.plot(xs, ys, color=color, lw=1.5, ls="--", marker="o", ms=4, label=f"fold {i} eval")
                drawn = True
        if drawn:
            ax.set(xlabel="step", ylabel="loss")
            ax.set_title("training loss (solid) and eval loss (dashed) per fold")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            atomic_path(path, lambda t: fig.savefig(t, dpi=DPI, format="png"))
    finally:
        plt.close(fig)
    return drawn


def _plot_hist(oof: pd.DataFrame, path: Path) -> None:
    rules = sorted(oof["rule"].unique(), key=str)
    groups = [(r, oof[oof["rule"] == r]) for r in rules] if len(rules) <= 6 else [("all rules (pooled)", oof)]
    ncols = min(len(groups), 3)
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.4 * nrows), squeeze=False)
    bins = np.linspace(0, 1, 26)
    try:
        for ax, (name, g) in zip(axes.flat, groups):
            for label, color in ((0, "tab:blue"), (1, "tab:red")):
                vals = g.loc[g["label"] == label, "prediction"]
                ax.hist(vals, bins=bins, alpha=0.55, color=color, label=f"label {label} (n={len(vals)})")
            ax.axvline(THRESHOLD, color="grey", ls="--", lw=1)
            ax.set_title(_mpl_text(_shorten(name, 45)), fontsize=9)
            ax.set_xlabel("prediction")
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(groups) :]:
            ax.set_visible(False)
        fig.suptitle("prediction histograms by true label")
        fig.tight_layout()
        atomic_path(path, lambda t: fig.savefig(t, dpi=DPI, format="png"))
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- markdown


def _fold_table(norm: dict[str, Any]) -> list[str]:
    cols = ["n", *HEADLINE_KEYS]
    lines = ["| fold | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for i, f in enumerate(norm["folds"]):
        n = f.get("n")
        cells = [str(n) if n is not None else "n/a"] + [_fmt(f.get(k)) for k in HEADLINE_KEYS]
        lines.append(f"| {f.get('fold', i)} | " + " | ".join(cells) + " |")
    for name in ("mean", "std"):
        if norm.get(name):
            cells = [""] + [_fmt(norm[name].get(k)) for k in HEADLINE_KEYS]
            lines.append(f"| **{name}** | " + " | ".join(cells) + " |")
    return lines


def _rule_table(oof: pd.DataFrame) -> list[str]:
    table = M.per_rule_auc(oof["rule"], oof["label"], oof["prediction"])
    lines = ["| rule | n | positives | AUC |", "|---|---|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {_md_cell(row.rule)} | {row.n} | {row.positives} | {_fmt(row.auc, 'undefined')} |")
    return lines


def _mistakes_table(oof: pd.DataFrame, top: int) -> list[str]:
    wrong = oof[(oof["prediction"] >= THRESHOLD).astype(int) != oof["label"]].copy()
    if wrong.empty or top <= 0:
        return ["_No misclassified rows at threshold 0.5._" if wrong.empty else "_Mistakes table disabled._"]
    wrong["_conf"] = (wrong["label"] - wrong["prediction"]).abs()
    wrong = wrong.sort_values("_conf", ascending=False, kind="mergesort").head(top)
    lines = ["| rule | label | prediction | text |", "|---|---|---|---|"]
    for row in wrong.itertuples(index=False):
        lines.append(
            f"| {_md_cell(_shorten(row.rule))} | {row.label} | {row.prediction:.3f} | {_md_cell(row.text, 160)} |"
        )
    return lines


def _headline(norm: dict[str, Any], overall: dict[str, Any]) -> str:
    folds, mean, std = norm["folds"], norm.get("mean"), norm.get("std")
    if norm.get("parts"):  # lb-proxy: weighed as the leaderboard weighs its seen and unseen rules
        parts = norm["parts"]
        terms = " + ".join(f"{w} x {p} {_fmt(parts[p]['mean'])}" for p, w in LB_WEIGHTS.items())
        lines = [f"**mean_rule_auc: {_fmt(norm['headline'])}** = ({terms}) / {sum(LB_WEIGHTS.values())}", ""]
        lines += ["| part | rule | AUC mean ± std over folds |", "|---|---|---|"]
        for p in LB_WEIGHTS:
            lines.append(f"| {p} | all rules | {_fmt(parts[p]['mean'])} ± {_fmt(parts[p]['std'])} |")
            for rule, r in parts[p]["per_rule"].items():
                lines.append(f"| {p} | {_md_cell(_shorten(rule, 60))} | {_fmt(r['mean'])} ± {_fmt(r['std'])} |")
        return "\n".join(lines)
    if folds and mean:
        s = f"**mean_rule_auc: {_fmt(mean.get('mean_rule_auc'))} ± {_fmt((std or {}).get('mean_rule_auc'))}**"
        s += f" (mean ± std over {len(folds)} folds"
        if overall and not _is_missing(overall.get("mean_rule_auc")):
            s += f"; all out-of-fold rows together: {_fmt(overall.get('mean_rule_auc'))}"
        return s + ")"
    return f"**mean_rule_auc: {_fmt(overall.get('mean_rule_auc'))}**"


def _plot_figures(df: pd.DataFrame, log_histories: list[list[dict]] | None, out_dir: Path) -> bool:
    """The report's PNGs; True when there was a training loss to plot."""
    _plot_roc(df, out_dir / FIGURES["roc"])
    _plot_confusion(df, out_dir / FIGURES["confusion"])
    _plot_hist(df, out_dir / FIGURES["hist"])
    loss_path = out_dir / FIGURES["loss"]
    has_loss = bool(log_histories) and _plot_loss(log_histories, loss_path)
    if not has_loss and loss_path.exists():
        loss_path.unlink()  # a stale figure from an earlier run in this folder would mislead
    return has_loss


def _meta(norm: dict[str, Any], df: pd.DataFrame) -> list[str]:
    meta = []
    if norm.get("scheme"):
        meta.append(f"- scheme: `{norm['scheme']}`")
    if norm.get("config"):
        meta.append(f"- config: `{norm['config']}`")
    if not _is_missing(norm.get("wall_time_s")):
        wt = float(norm["wall_time_s"])
        meta.append(f"- wall time: {wt:.1f} s ({wt / 60:.1f} min)")
    meta.append(f"- out-of-fold rows: {len(df):,} over {df['rule'].nunique()} rule(s)")
    return meta


def _figures_section(has_loss: bool) -> list[str]:
    lines = [
        "## Figures",
        "",
        f"![ROC per rule]({FIGURES['roc']})",
        "",
        f"![Confusion matrix at threshold {THRESHOLD}]({FIGURES['confusion']})",
        "",
    ]
    if has_loss:
        lines += [f"![Loss curves]({FIGURES['loss']})", ""]
    else:
        no_loss = (
            "_No training-loss history was given (e.g. the TF-IDF baseline logs none), "
            "so there is no loss-curve figure._"
        )
        lines += [no_loss, ""]
    return lines + [f"![Prediction histograms]({FIGURES['hist']})", ""]


# ----------------------------------------------------------------------------- public API


def write_report(
    out_dir: Path,
    oof: pd.DataFrame,
    metrics: dict,
    log_histories: list[list[dict]] | None = None,
    title: str = "jigsaw-kit report",
    top_mistakes: int = 15,
) -> Path:
    """Write report.md and PNG figures into out_dir (created if needed); return the report.md path.

    One file a reviewer can open to judge a run: headline metric, per-fold spread, per-rule AUCs,
    the figures, and the most confident mistakes (the quickest way to spot label noise or a bug).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _check_oof(oof)
    norm = _normalize_metrics(metrics)
    overall = norm["overall"] or M.summarize(df["rule"], df["label"], df["prediction"])

    has_loss = _plot_figures(df, log_histories, out_dir)
    lines = [f"# {title}", "", *_meta(norm, df), "", _headline(norm, overall), ""]
    if norm.get("never_used"):
        nu = norm["never_used"]
        lines += [
            f"Diagnostic, not the target: the {nu['n']:,} held-out bodies that are never used as an example "
            f"(label-noisy) read {_fmt(nu['mean_rule_auc'])} (mean over folds).",
            "",
        ]

    lines += ["## Metrics", ""]
    if norm["folds"]:
        lines += _fold_table(norm) + [""]
    lines += ["Over all out-of-fold rows together:", ""]
    lines += ["| " + " | ".join(HEADLINE_KEYS) + " |", "|" + "---|" * len(HEADLINE_KEYS)]
    lines += ["| " + " | ".join(_fmt(overall.get(k)) for k in HEADLINE_KEYS) + " |", ""]

    undefined_note = "AUC is undefined for a rule whose rows hold a single class; it is left out of mean_rule_auc."
    lines += ["## Per rule", "", undefined_note, ""]
    lines += _rule_table(df) + [""]
    lines += _figures_section(has_loss)
    lines += [f"## Most confident mistakes (top {top_mistakes}, threshold {THRESHOLD})", ""]
    lines += _mistakes_table(df, top_mistakes) + [""]

    path = out_dir / "report.md"
    atomic_path(path, lambda t: t.write_text("\n".join(lines), encoding="utf-8"))
    return path


def console_table(metrics: dict) -> str:
    """A compact plain-text table for the terminal: the headline numbers and per-rule AUCs at a glance."""
    norm = _normalize_metrics(metrics)
    out: list[str] = []
    if norm["folds"] and norm.get("mean"):
        mean, std = norm["mean"], norm.get("std") or {}
        out.append(f"{'metric':<15} {'mean':>7}  {'std':>7}")
        for k in HEADLINE_KEYS:
            out.append(f"{k:<15} {_fmt(mean.get(k)):>7}  {_fmt(std.get(k)):>7}")
    else:
        src = norm["overall"] or norm.get("mean") or {}
        out.append(f"{'metric':<15} {'value':>7}")
        for k in HEADLINE_KEYS:
            out.append(f"{k:<15} {_fmt(src.get(k)):>7}")
    per_rule = (norm["overall"] or {}).get("per_rule") or {}
    if per_rule:
        out.append("per rule (overall):")
        for rule, r in per_rule.items():
            auc = _fmt(r.get("auc"), "undefined")
            out.append(f"  {auc:>9}  n={r.get('n') or 0:>6}  {_shorten(rule)}")
    return "\n".join(out)


def cv_headline(metrics: dict, scheme: str, name: str) -> str:
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
