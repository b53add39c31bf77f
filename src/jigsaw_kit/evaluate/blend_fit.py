"""Rank-blend weights fitted on out-of-fold predictions, with an honest (nested) estimate of what they earn.

Weights chosen on the OOF rows that then score them flatter the blend, so the headline is nested leave-one-fold-out:
each CV fold (the unit `blend_oof` averages over: fold, or part+fold for lb-proxy) is scored under weights fitted
on the other folds only, and those per-fold scores are aggregated as `blend_oof` aggregates (lb-proxy parts 2:4).
lb-proxy holds every text once per part, so a held-out fold's texts are also purged from the rows that fit its
weights (else its labels would vote through the other part). Weights are searched on a simplex grid: exact and
deterministic for the 2-4 inputs one blends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from jigsaw_kit.core.atomic import write_json
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import mean_rule_auc
from jigsaw_kit.data.folds import LB_WEIGHTS
from jigsaw_kit.evaluate.blend import TIE_DECIMALS, align_oof, oof_score, rank_groups, rank_within_rule

MAX_GRID = 50_000  # candidate weight vectors; a finer grid over many inputs is an overfitting machine anyway


@dataclass
class _Oof:
    base: pd.DataFrame
    ranks: np.ndarray  # (rows, inputs): within-(fold, rule) ranks, what blend_oof mixes
    grid: np.ndarray  # (candidates, inputs)
    unit: np.ndarray  # per row: index of its fold (part, fold)
    units: list[tuple[str, Any]]
    unit_part: np.ndarray  # per unit: index into parts
    part_w: np.ndarray
    rules: list[str]
    group_rows: list[np.ndarray]  # per (unit, rule) group: its row indices
    group_unit: np.ndarray
    group_rule: np.ndarray
    full: np.ndarray  # (candidates, groups): each group's AUC under each candidate, on all rows


def simplex_grid(n: int, step: float) -> np.ndarray:
    """Every vector of n non-negative multiples of `step` summing to 1 (stars and bars)."""
    k = round(1 / step) if step > 0 else 0
    if k < 1 or abs(k * step - 1) > 1e-9:
        raise KitError(f"grid_step must divide 1 (0.1, 0.05, 0.25, ...), got {step}.")
    if math.comb(k + n - 1, n - 1) > MAX_GRID:
        raise KitError(f"a grid of step {step} over {n} inputs has over {MAX_GRID} points; use a coarser step.")
    rows = []
    for bars in combinations(range(k + n - 1), n - 1):
        edges = (-1, *bars, k + n - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(n)])
    return np.round(np.asarray(rows, dtype=float) / k, 10)


def _group_auc(ranks: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """One group's AUC under every candidate at once (Mann-Whitney on average ranks, ties count half)."""
    pos = labels.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(len(grid), np.nan)
    r = rankdata(np.round(ranks @ grid.T, TIE_DECIMALS), axis=0)  # ties as blend() makes them
    return (r[pos].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _prepare(paths: list[Path], step: float) -> tuple[_Oof, list[np.ndarray]]:
    base, keyed = align_oof(paths)
    if len(paths) < 2:
        raise KitError("fitting blend weights needs at least two OOF inputs.")
    if "fold" not in base.columns:
        raise KitError("fitting blend weights needs OOFs with a fold column (every `jigsaw-kit cv` oof.csv has one).")
    groups = rank_groups(base)
    ranks = np.column_stack([rank_within_rule(groups, k) for k in keyed])
    part = base["part"].astype(str) if "part" in base.columns else pd.Series("", index=base.index)
    unit_key = list(zip(part, base["fold"]))
    units = sorted(set(unit_key))
    if len(units) < 2:
        raise KitError("fitting blend weights needs at least two folds (one is held out at a time).")
    position = {u: i for i, u in enumerate(units)}
    unit = np.array([position[u] for u in unit_key])
    parts = list(LB_WEIGHTS) if "part" in base.columns else [""]
    part_w = np.array([LB_WEIGHTS.get(p, 1) for p in parts], dtype=float)
    rules = sorted(base["rule"].unique())
    rule_idx = pd.Index(rules).get_indexer(base["rule"])
    keys = pd.DataFrame({"u": unit, "r": rule_idx}).groupby(["u", "r"]).indices
    grid = simplex_grid(len(paths), step)
    labels = base["label"].to_numpy()
    group_rows = [np.sort(v) for v in keys.values()]
    full = np.column_stack([_group_auc(ranks[g], labels[g], grid) for g in group_rows])
    d = _Oof(
        base=base,
        ranks=ranks,
        grid=grid,
        unit=unit,
        units=units,
        unit_part=np.array([parts.index(p) if p in parts else -1 for p, _ in units]),
        part_w=part_w,
        rules=rules,
        group_rows=group_rows,
        group_unit=np.array([u for u, _ in keys]),
        group_rule=np.array([r for _, r in keys]),
        full=full,
    )
    return d, keyed


def _table(d: _Oof, rows: np.ndarray) -> np.ndarray:
    """Every group's AUC per candidate on the `rows` (bool mask) only; NaN for groups with none of them."""
    table = d.full.copy()
    labels = d.base["label"].to_numpy()
    for g, idx in enumerate(d.group_rows):
        keep = idx[rows[idx]]
        if len(keep) == 0:
            table[:, g] = np.nan
        elif len(keep) < len(idx):  # purged rows: recompute (ranks stay those of the whole fold)
            table[:, g] = _group_auc(d.ranks[keep], labels[keep], d.grid)
    return table


def _aggregate(d: _Oof, table: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per candidate, blend_oof's headline over the chosen groups: rules per fold, folds per part, parts weighed."""
    # whether a group's AUC is defined depends on its labels only, so one candidate's row tells for all
    ok = groups & np.isfinite(table[0])
    per_unit = {u: table[:, ok & (d.group_unit == u)].mean(axis=1) for u in np.unique(d.group_unit[ok])}
    total, weight = np.zeros(len(d.grid)), 0.0
    for p, w in enumerate(d.part_w):
        in_part = [s for u, s in per_unit.items() if d.unit_part[u] == p]
        if in_part:
            total, weight = total + w * np.mean(in_part, axis=0), weight + w
    return total / weight if weight else np.full(len(d.grid), np.nan)


def _best(d: _Oof, scores: np.ndarray) -> int | None:
    """The best candidate; exact ties go to the most even weights (the least committed choice), then grid order."""
    if not np.isfinite(scores).any():
        return None
    top = np.flatnonzero(scores >= np.nanmax(scores) - 1e-12)
    spread = ((d.grid[top] - 1 / d.grid.shape[1]) ** 2).sum(axis=1)
    return int(top[np.argmin(spread)])


def _fit(d: _Oof, rows: np.ndarray, per_rule: bool) -> tuple[int, dict[int, int] | None]:
    """Grid indices of the weights fitted on `rows`: global, and per rule (rules without a usable fit fall back)."""
    table = _table(d, rows)
    glob = _best(d, _aggregate(d, table, np.ones(len(d.group_rows), dtype=bool)))
    if glob is None:
        raise KitError("no fold left to fit blend weights on holds both labels of any rule.")
    if not per_rule:
        return glob, None
    by_rule = {r: _best(d, _aggregate(d, table, d.group_rule == r)) for r in range(len(d.rules))}
    return glob, {r: glob if c is None else c for r, c in by_rule.items()}


def _mix(d: _Oof, glob: int | np.ndarray, by_rule: dict[int, int] | None = None) -> np.ndarray:
    """Per-row blend under grid weights (or a weight vector), as blend() mixes ranks."""
    w = np.tile(d.grid[glob] if np.ndim(glob) == 0 else np.asarray(glob, dtype=float), (len(d.base), 1))
    if by_rule is not None:
        rule_idx = pd.Index(d.rules).get_indexer(d.base["rule"])
        w = np.asarray([d.grid[by_rule.get(r, glob)] for r in rule_idx])
    w = w / w.sum(axis=1, keepdims=True)
    return np.round(sum(w[:, i] * d.ranks[:, i] for i in range(d.ranks.shape[1])), TIE_DECIMALS)


def _weights(d: _Oof, by_rule: dict[int, int] | None) -> dict[str, list[float]] | None:
    return None if by_rule is None else {d.rules[r]: d.grid[c].tolist() for r, c in by_rule.items()}


def _held_out(d: _Oof, own: np.ndarray, pred: np.ndarray, into: np.ndarray) -> float | None:
    """Store the held-out fold's blend into the stitched prediction; return the fold's own mean per-rule AUC."""
    into[own] = pred[own]
    sub = d.base[own]
    return _num(mean_rule_auc(sub["rule"], sub["label"], pred[own]))


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def fit_blend_oof(paths: list[Path], per_rule: bool = False, grid_step: float = 0.1) -> dict[str, Any]:
    """Fit rank-blend weights on OOF files and estimate honestly what they score (see the module docstring).

    `weights` (and `per_rule_weights` when that mode is kept) are fitted on every fold: what a notebook should use.
    `score_fitted_held_out` is the honest figure; `score_fitted_in_sample` reuses the fitting rows (optimistic).
    """
    d, keyed = _prepare([Path(p) for p in paths], grid_step)
    labels = [str(p) for p in paths]
    equal = np.ones(len(paths))
    score_equal = oof_score(d.base, _mix(d, equal))
    glob, by_rule = _fit(d, np.ones(len(d.base), dtype=bool), per_rule)
    held = {"global": np.zeros(len(d.base)), "per-rule": np.zeros(len(d.base))}
    folds = []
    for u, (part, fold) in enumerate(d.units):
        own = d.unit == u
        # the fold's own rows, and (lb-proxy) its texts' rows in the other part, never fit its weights
        rows = ~own & ~d.base["text"].isin(set(d.base.loc[own, "text"])).to_numpy()
        g_u, r_u = _fit(d, rows, per_rule)
        fold = fold.item() if isinstance(fold, np.generic) else fold  # JSON-able
        entry: dict[str, Any] = {"fold": fold, "part": part or None, "fit_rows": int(rows.sum())}
        entry["weights"], entry["score"] = d.grid[g_u].tolist(), _held_out(d, own, _mix(d, g_u), held["global"])
        if per_rule:
            entry["per_rule_weights"] = _weights(d, r_u)
            entry["score_per_rule"] = _held_out(d, own, _mix(d, g_u, r_u), held["per-rule"])
        folds.append(entry)
    # each fold's rows carry that fold's own held-out blend, so blend_oof's aggregation scores them as cv would
    honest = {m: oof_score(d.base, pred) for m, pred in held.items() if m == "global" or per_rule}
    in_sample = {"global": oof_score(d.base, _mix(d, glob, None))}
    if per_rule:
        in_sample["per-rule"] = oof_score(d.base, _mix(d, glob, by_rule))
    keep_rule = per_rule and honest["per-rule"] > honest["global"]
    mode = "per-rule" if keep_rule else "global"
    return {
        "inputs": labels,
        "weights": d.grid[glob].tolist(),
        "per_rule_weights": _weights(d, by_rule) if keep_rule else None,
        "score_equal": _num(score_equal),
        "score_fitted_in_sample": _num(in_sample[mode]),
        "score_fitted_held_out": _num(honest[mode]),
        "score_global_held_out": _num(honest["global"]),
        "score_per_rule_held_out": _num(honest["per-rule"]) if per_rule else None,
        "score_per_rule_in_sample": _num(in_sample["per-rule"]) if per_rule else None,
        "per_rule_candidate_weights": _weights(d, by_rule) if per_rule and not keep_rule else None,
        "fold_weights": folds,
        "inputs_scores": {lab: _num(oof_score(d.base, k)) for lab, k in zip(labels, keyed)},
        "mode": mode,
        "grid_step": grid_step,
        "note": _note(per_rule, keep_rule, honest),
    }


def _note(per_rule: bool, keep_rule: bool, honest: dict[str, float]) -> str:
    """The fit's `note`: which score is honest, and why per-rule weights were kept or rejected."""
    note = (
        "weights fitted on all folds are the ones to use; score_fitted_held_out is nested leave-one-fold-out (each "
        "fold scored under weights fitted on the other folds, its texts purged from them); score_fitted_in_sample "
        "scores the weights on the rows that chose them (optimistic)."
    )
    if per_rule:
        verdict = "beats" if keep_rule else "does not beat"
        note += (
            f" per-rule {'kept' if keep_rule else 'rejected'}: its held-out {honest['per-rule']:.4f} {verdict} "
            f"global's {honest['global']:.4f}."
        )
        if keep_rule:
            note += " Rules absent from per_rule_weights (e.g. the hidden test's unseen ones) take `weights`."
    return note


def write_fitted_blend(result: dict[str, Any], path: Path) -> Path:
    """Write fit_blend_oof's result as JSON, atomically (a notebook reads `weights` / `per_rule_weights`)."""
    return write_json(Path(path), result)


def format_fit(res: dict[str, Any]) -> str:
    """What `jigsaw-kit blend --oof --fit` prints: each input, equal, fitted in-sample and the honest held-out score."""

    def f(x: float | None) -> str:
        return "  n/a " if x is None else f"{x:.4f}"

    lines = [f"{f(s)}  mean_rule_auc  {name}" for name, s in res["inputs_scores"].items()]
    lines += [
        f"{f(res['score_equal'])}  equal weights",
        f"{f(res['score_fitted_in_sample'])}  fitted on every fold (in-sample: optimistic)",
        f"{f(res['score_fitted_held_out'])}  fitted, each fold scored with weights fitted on the others (honest)",
        f"weights {[round(w, 3) for w in res['weights']]} ({res['mode']})",
    ]
    if res.get("per_rule_weights"):
        lines += [f"  {w}  {rule[:60]}" for rule, w in res["per_rule_weights"].items()]
    return "\n".join(lines + [res["note"]])
