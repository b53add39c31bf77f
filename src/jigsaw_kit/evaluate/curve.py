"""Learning curves: how a recipe's CV score grows with the labels it is given.

    jigsaw-kit cv --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-hybrid \
        --scheme lb-proxy --folds 5 --learning-curve            # fractions 1/8, 1/4, 1/2, 1

Kaggle's hidden test labels each of its rules through ~9,000 rows x 4 examples; train.csv labels a
rule through ~1,000 texts. A recipe that wins at the public size may lose at the hidden size, so each
fold is refitted on nested shares of its labelled rows (within each rule and label, so no rule loses
a class), with the held-out texts and seeds unchanged, and the slope per doubling of labels is read
off per fold. The full-data point is the plain CV run, row for row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import nan_mean, nan_std
from jigsaw_kit.data.folds import LB_WEIGHTS
from jigsaw_kit.evaluate.aggregate import aggregate, part_summary

DEFAULT_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
FIGURE = "learning_curve.png"


def parse_fractions(values: list[str] | None) -> tuple[float, ...]:
    """Fractions from the command line ("1/8", "0.25", ...), sorted; 1 is always the last point."""
    if not values:
        return DEFAULT_FRACTIONS
    out = set()
    for v in ",".join(values).split(","):
        v = v.strip()
        if not v:
            continue
        try:
            num, _, den = v.partition("/")
            f = float(num) / float(den) if den else float(v)
        except (ValueError, ZeroDivisionError):
            raise KitError(f"--fractions: {v!r} is not a fraction; give e.g. 1/8,1/4,1/2 or 0.125,0.25.") from None
        if not 0 < f <= 1:
            raise KitError(f"--fractions: {v!r} must lie in (0, 1].")
        out.add(f)
    out.add(1.0)  # the full-data point is the plain CV: the curve ends at the figure users already know
    return tuple(sorted(out))


def shares(fractions: tuple[float, ...] | None) -> tuple[float, ...]:
    """The shares below 1 that the curve refits at (the full-data point is the plain CV); () for no curve."""
    return tuple(sorted({f for f in fractions or () if f < 1}))


class FoldsRunLike(Protocol):  # cv.FoldsRun, named here without importing cv (cv calls this module)
    oofs: list[pd.DataFrame]
    metrics: list[dict[str, Any]]
    rows_per_rule: list[dict[str, int]]
    wall_time_s: float


# (share, rows hook) -> CV over every fold, fitted on the rows the hook keeps: cv.run_folds with the run's settings
ShareRunner = Callable[[float, Callable[[int, pd.DataFrame], pd.DataFrame]], FoldsRunLike]


def learning_curve(
    at_share: ShareRunner, plain: FoldsRunLike, fractions: tuple[float, ...], seed: int, weighted: bool, headline: float
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(metrics.json's `learning_curve`, learning_curve_oof.csv): CV once per share of each fold's labelled rows.

    Fold i keeps the rows ranked below the share by subsample_ranks(rows, (seed, i)), so the samples nest;
    plain, the full-data run, is the point at 1.
    """
    runs = {}
    for share in shares(fractions):

        def keep(i: int, rows: pd.DataFrame, share: float = share) -> pd.DataFrame:
            return subsample(rows, share, subsample_ranks(rows, (seed, i)))

        runs[share] = at_share(share, keep)
    runs[1.0] = plain
    order = sorted(runs)
    points = [_point(f, runs[f]) for f in order]
    oof = pd.concat([runs[f].oofs[i].assign(fraction=f) for i in range(len(plain.oofs)) for f in order])
    return summarize_curve(points, headline, weighted, tuple(order)), oof.reset_index(drop=True)


def _point(fraction: float, run: FoldsRunLike) -> dict[str, Any]:
    """One point of the learning curve: the fraction's headline, parts, per-rule figures and label counts."""
    fold_metrics = [{**m, "rows_per_rule": r} for m, r in zip(run.metrics, run.rows_per_rule)]
    agg = aggregate(fold_metrics)
    rules = sorted({r for m in fold_metrics for r in m["rows_per_rule"]})
    counts = {r: nan_mean([m["rows_per_rule"].get(r, 0) for m in fold_metrics]) for r in rules}
    keep = ("fold", "part", "mean_rule_auc", "per_rule", "train_rows", "rows_per_rule")
    return {
        "fraction": fraction,
        "rows_per_rule": counts,
        "rows_per_rule_mean": nan_mean(list(counts.values())),
        "mean_rule_auc": agg["mean_rule_auc"],
        "std": agg["std"]["mean_rule_auc"],
        "spread": spread(fold_metrics),
        "parts": agg.get("parts", {}),
        "per_rule": part_summary(fold_metrics)["per_rule"],
        "folds": [{k: m[k] for k in keep} for m in fold_metrics],
        "wall_time_s": run.wall_time_s,
    }


def subsample_ranks(rows: pd.DataFrame, seed: int | tuple[int, ...]) -> np.ndarray:
    """A random rank of each row within its (rule, label) group, fixed by seed.

    Keeping rows whose rank < ceil(f * group size) nests the samples: the 1/8 rows lie inside the 1/4 rows.
    """
    rng = np.random.default_rng(seed)
    ranks = np.empty(len(rows), dtype=np.int64)
    groups = pd.DataFrame({"r": np.asarray(rows["rule"]), "y": np.asarray(rows["label"])}).groupby(["r", "y"]).indices
    for key in sorted(groups, key=str):
        idx = groups[key]
        ranks[idx] = rng.permutation(len(idx))
    return ranks


def subsample(rows: pd.DataFrame, fraction: float, ranks: np.ndarray) -> pd.DataFrame:
    """The rows kept at this fraction, in their original order (fraction 1 returns every row unchanged)."""
    if fraction >= 1:
        return rows
    sizes = pd.DataFrame({"r": np.asarray(rows["rule"]), "y": np.asarray(rows["label"])}).groupby(["r", "y"])
    n = sizes["r"].transform("size").to_numpy()
    keep = ranks < np.ceil(fraction * n - 1e-9)
    return rows[keep].reset_index(drop=True)


def rows_per_rule(rows: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in rows.groupby("rule").size().items()}


def slope(xs: list[float], ys: list[float]) -> float:
    """AUC gained per doubling: least squares of AUC on log2(labelled rows)."""
    pts = [(math.log2(x), y) for x, y in zip(xs, ys) if x > 0 and y is not None and np.isfinite(y)]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return float("nan")
    a = np.array(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def spread(fold_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """What varies with the fold split, not between rules: the sd of fold AUCs pooled within folds that
    cover the same rules (lb-proxy's unseen folds hold one rule each, and the rules differ by ~0.12, which
    a plain sd over folds would report as noise). The lb-proxy headline combines its parts' sd 2:4."""
    groups: dict[tuple[str, str], list[float]] = {}
    for m in fold_metrics:
        group = m["fold"].rsplit("-fold", 1)[0] if "-fold" in m["fold"] else ""
        groups.setdefault((m["part"], group), []).append(m["mean_rule_auc"])
    by_part: dict[str, list[float]] = {}
    for (part, _), aucs in groups.items():
        a = np.array([x for x in aucs if x is not None and np.isfinite(x)], dtype=float)
        if a.size > 1:
            by_part.setdefault(part, []).append(float(a.var()))
    parts = {p: float(np.sqrt(np.mean(v))) for p, v in by_part.items()}
    if set(parts) >= set(LB_WEIGHTS):
        total = sum(LB_WEIGHTS.values())
        head = float(np.sqrt(sum((w * parts[p] / total) ** 2 for p, w in LB_WEIGHTS.items())))
    else:
        head = parts.get("", float("nan"))
    return {"headline": head, "parts": {p: v for p, v in parts.items() if p}}


def summarize_curve(
    points: list[dict[str, Any]], headline: float, weighted: bool, fractions: tuple[float, ...]
) -> dict[str, Any]:
    """metrics.json's `learning_curve`: the points, the slope per doubling with its fold spread, an extrapolation."""
    by_fold: dict[str, dict[str, Any]] = {}
    for pt in points:
        for f in pt["folds"]:
            d = by_fold.setdefault(f["fold"], {"part": f["part"], "x": [], "y": []})
            d["x"].append(f["train_rows"])
            d["y"].append(f["mean_rule_auc"])
    per_fold = {name: slope(d["x"], d["y"]) for name, d in by_fold.items()}
    parts = {}
    if weighted:
        for p in LB_WEIGHTS:
            s = [v for n, v in per_fold.items() if by_fold[n]["part"] == p]
            parts[p] = {"mean": nan_mean(s), "std": nan_std(s)}
        mean = sum(w * parts[p]["mean"] for p, w in LB_WEIGHTS.items()) / sum(LB_WEIGHTS.values())
    else:
        mean = nan_mean(list(per_fold.values()))
    return {
        "fractions": list(fractions),
        "points": points,
        "slope_per_doubling": {
            "mean": mean,
            "std": nan_std(list(per_fold.values())),
            "parts": parts,
            "folds": per_fold,
        },
        "extrapolation": {
            "x4": headline + 2 * mean,
            "x8": headline + 3 * mean,
            "note": "EXTRAPOLATION, not a measurement: the full-data headline plus the fitted slope per doubling "
            "(2 doublings for 4x the public labels, 3 for 8x); AUC saturates, so read it as an upper trend.",
        },
    }


def _err(point: dict[str, Any], part: str | None = None) -> float:
    """The fold spread (see `spread`); the plain fold sd for curves written before it existed."""
    sp = point.get("spread")
    if sp is None:
        return point["parts"][part]["std"] if part else point["std"]
    v = sp["parts"].get(part, float("nan")) if part else sp["headline"]
    return 0.0 if v is None or not np.isfinite(v) else v


def _sd(point: dict[str, Any]) -> str:
    return f"{_err(point):.4f}"


def _short(rule: str, width: int = 24) -> str:
    return rule.split(":")[0][:width]


def markdown(curve: dict[str, Any]) -> str:
    """The report's learning-curve section."""
    pts = curve["points"]
    rules = sorted({r for p in pts for r in p["per_rule"]})
    has_parts = bool(pts and pts[0].get("parts"))
    head = ["fraction", "labelled rows / rule", "headline ± fold spread"]
    head += ["seen", "unseen"] if has_parts else []
    head += [_short(r) for r in rules] + ["wall s"]
    lines = ["## Learning curve", "", f"![learning curve]({FIGURE})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in pts:
        row = [f"{p['fraction']:g}", f"{p['rows_per_rule_mean']:.0f}", f"{p['mean_rule_auc']:.4f} ± {_sd(p)}"]
        if has_parts:
            row += [f"{p['parts'][k]['mean']:.4f}" for k in LB_WEIGHTS]
        row += [f"{p['per_rule'].get(r, {}).get('mean', float('nan')):.4f}" for r in rules]
        lines.append("| " + " | ".join(row + [f"{p['wall_time_s']:.0f}"]) + " |")
    s, ex = curve["slope_per_doubling"], curve["extrapolation"]
    lines += [
        "",
        "Fold spread: the sd of fold AUCs within folds that cover the same rules (lb-proxy's unseen folds hold one "
        "rule each), the parts combined 2:4.",
        "",
        f"**Slope per doubling of labels: {s['mean']:+.4f}** (sd over folds {s['std']:.4f})",
    ]
    for p, v in s["parts"].items():
        lines.append(f"- {p}: {v['mean']:+.4f} ± {v['std']:.4f}")
    lines += [
        "",
        f"Extrapolated (not measured): {ex['x4']:.4f} at 4x the public labels, {ex['x8']:.4f} at 8x. {ex['note']}",
        "",
    ]
    return "\n".join(lines)


def console(curve: dict[str, Any]) -> str:
    s, ex = curve["slope_per_doubling"], curve["extrapolation"]
    lines = ["learning curve (fraction, labelled rows per rule, headline ± fold spread):"]
    for p in curve["points"]:
        lines.append(f"  {p['fraction']:<6g} {p['rows_per_rule_mean']:>7.0f}  {p['mean_rule_auc']:.4f} ± {_sd(p)}")
    lines.append(
        f"  slope per doubling {s['mean']:+.4f} (sd {s['std']:.4f}); extrapolated 4x {ex['x4']:.4f}, 8x {ex['x8']:.4f}"
    )
    return "\n".join(lines)


def plot(curve: dict[str, Any], path: Path, title: str) -> Path:
    """Headline and each part against labelled rows per rule (log2 axis), fold sd as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jigsaw_kit.core.atomic import atomic_path

    pts = curve["points"]
    x = [p["rows_per_rule_mean"] for p in pts]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(x, [p["mean_rule_auc"] for p in pts], yerr=[_err(p) for p in pts], marker="o", lw=2,
                capsize=3, label="headline")  # fmt: skip
    for part in LB_WEIGHTS if pts and pts[0].get("parts") else ():
        ax.errorbar(x, [p["parts"][part]["mean"] for p in pts], yerr=[_err(p, part) for p in pts],
                    marker=".", ls="--", capsize=2, label=part)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled rows per rule (log2)")
    ax.set_ylabel("mean per-rule AUC")
    ax.set_title(
        f"{title}\nslope {curve['slope_per_doubling']['mean']:+.4f} per doubling; bars: fold spread", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_path(path, lambda t: fig.savefig(t, dpi=100, format="png"))
    plt.close(fig)
    return path
