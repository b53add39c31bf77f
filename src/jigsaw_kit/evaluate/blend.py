"""Per-rule rank blending of several models' predictions.

The metric ranks within each rule, so models are blended on their within-rule ranks (scaled
to [0, 1]), not on raw probabilities whose scales differ between models and rules.

    jigsaw-kit blend runs/a/submission.csv runs/b --test DATA/test.csv --weights 3 1 --output submission.csv
    jigsaw-kit blend runs/a/cv/oof.csv runs/b/cv/oof.csv --oof          # the blended CV metric

Inputs are submission-shaped CSVs (row_id, rule_violation) or run dirs (their submission.csv);
with --oof, oof.csv files (rule, text, label, prediction) or CV dirs holding one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.atomic import write_csv
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import mean_rule_auc, nan_mean
from jigsaw_kit.data.folds import LB_WEIGHTS
from jigsaw_kit.data.submission import check_submission, read_submission
from jigsaw_kit.evaluate.oof import read_oofs

TIE_DECIMALS = 12  # blended ranks are rationals of small denominators: far coarser than 1e-12


def rank_within_rule(rules: Any, scores: Any) -> np.ndarray:
    """Each score's average rank among its rule's scores, scaled to [0, 1] (ties share a rank)."""
    df = pd.DataFrame({"rule": np.asarray(rules), "score": np.asarray(scores, dtype=float)})
    if df["score"].isna().any():
        raise KitError("cannot rank NaN predictions: an input file holds missing values.")
    ranks = df.groupby("rule")["score"].rank(method="average")
    sizes = df.groupby("rule")["score"].transform("size")
    return np.where(sizes > 1, (ranks - 1) / (sizes - 1).clip(lower=1), 0.5)


def blend(rules: Any, predictions: list[Any], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of within-rule ranks; the result is itself in [0, 1]."""
    if not predictions:
        raise KitError("blend needs at least one prediction set.")
    weights = list(weights) if weights is not None else [1.0] * len(predictions)
    if len(weights) != len(predictions):
        raise KitError(f"--weights has {len(weights)} values for {len(predictions)} inputs; give one per input.")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise KitError(f"--weights must be non-negative with a positive sum, got {weights}.")
    w = np.asarray(weights, dtype=float) / sum(weights)
    mixed = sum(wi * rank_within_rule(rules, p) for wi, p in zip(w, predictions))
    # rounded so that mixes equal on paper tie (the metric counts ties half), not split by float noise
    return np.round(mixed, TIE_DECIMALS)


def _submission_path(p: Path) -> Path:
    if p.is_dir():
        p = p / "submission.csv"
    if not p.is_file():
        raise KitError(f"{p} not found: pass submission CSVs or run dirs that hold a submission.csv.")
    return p


def read_test(path: Path) -> pd.DataFrame:
    """blend's --test: the competition's test.csv, checked as `run` checks it."""
    from jigsaw_kit.data.competition import _read_csv, validate_test

    if not Path(path).is_file():
        raise KitError(f"--test {path}: no such file; pass the competition's test.csv (it gives each row's rule).")
    return validate_test(_read_csv(Path(path)), Path(path))


def blend_submissions(paths: list[Path], test: pd.DataFrame, weights: list[float] | None) -> pd.DataFrame:
    """Blend submission files aligned on test.csv's row_ids; rules come from test.csv."""
    ids = test["row_id"].astype("int64")
    preds = []
    for p in map(_submission_path, paths):
        sub = read_submission(p)
        s = sub.set_index("row_id")["rule_violation"]
        missing = sorted(set(ids) - set(s.index))
        if missing:
            raise KitError(f"{p}: row_ids do not match --test (missing e.g. {missing[:3]}).")
        preds.append(s.loc[ids].to_numpy(dtype=float))
    return pd.DataFrame({"row_id": ids.to_numpy(), "rule_violation": blend(test["rule"], preds, weights)})


def align_oof(paths: list[Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Read OOF files and align them on the first one's rows: (base, each input's predictions).

    `base` holds the key ([part,] rule, text), label and fold (when every input has one), on a RangeIndex.
    """
    frames = read_oofs(paths)  # each checked: columns, numbers, one row per key, one scheme
    by_fold = all("fold" in f.columns for f in frames)
    # lb-proxy holds each text once per part (seen, unseen): the part is part of a row's identity
    by_part = all("part" in f.columns for f in frames)
    key = [*(["part"] if by_part else []), "rule", "text"]
    cols = [*key, "label", *(["fold"] if by_fold else [])]
    base = frames[0][cols].reset_index(drop=True)
    keyed = []
    for p, f in zip(paths, frames):
        if set(map(tuple, f[key].to_numpy())) != set(map(tuple, base[key].to_numpy())):
            raise KitError(f"{p}: its held-out texts differ from {paths[0]}'s; blend OOFs of the same scheme and seed.")
        aligned = f.set_index(key).loc[pd.MultiIndex.from_frame(base[key])]
        if by_fold and (aligned["fold"].to_numpy() != base["fold"].to_numpy()).any():
            raise KitError(f"{p}: its folds differ from {paths[0]}'s; blend OOFs of the same scheme and seed.")
        if (aligned["label"].to_numpy() != base["label"].to_numpy()).any():
            raise KitError(f"{p}: its labels differ from {paths[0]}'s on the same texts; blend OOFs of the same data.")
        keyed.append(aligned["prediction"].to_numpy())
    return base, keyed


def rank_groups(base: pd.DataFrame) -> pd.Series:
    """The groups blend_oof ranks within: (fold, rule), as each fold's model would be blended on its own."""
    return base["rule"] + "\x1f" + base["fold"].astype(str) if "fold" in base.columns else base["rule"]


def oof_score(base: pd.DataFrame, pred: np.ndarray) -> float:
    """The headline `cv` prints: mean over folds of the mean per-rule AUC (lb-proxy: parts weighed as LB_WEIGHTS)."""
    if "fold" not in base.columns:
        return mean_rule_auc(base["rule"], base["label"], pred)

    def fold_mean(rows: pd.Index) -> float:
        b = base.loc[rows]
        return nan_mean([mean_rule_auc(g["rule"], g["label"], pred[g.index]) for _, g in b.groupby("fold")])

    if "part" in base.columns:  # weighed as `cv --scheme lb-proxy` weighs its headline
        parts = {p: fold_mean(base.index[base["part"] == p]) for p in LB_WEIGHTS}
        return sum(w * parts[p] for p, w in LB_WEIGHTS.items()) / sum(LB_WEIGHTS.values())
    return fold_mean(base.index)


def blend_oof(
    paths: list[Path], weights: list[float] | None, output: Path | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Blend OOF files joined on (rule, text); returns the blended frame and each input's metric.

    With a `fold` column (every `jigsaw-kit cv` OOF has one) ranks are taken within (fold, rule),
    as each fold's model would be blended on its own, and the metric is the mean over folds of
    the mean per-rule AUC: the headline figure `cv` prints, so the two compare directly (for
    lb-proxy OOFs, weighed over seen and unseen parts as its headline is). output: where to write the blended OOF.
    """
    base, keyed = align_oof(paths)
    out = base.assign(prediction=blend(rank_groups(base), keyed, weights))
    scores = {str(p): oof_score(base, k) for p, k in zip(paths, keyed)}
    scores["blend"] = oof_score(base, out["prediction"].to_numpy())
    if output is not None:
        write_csv(out, Path(output))
    return out, scores


def blend_to_submission(paths: list[Path], test_path: Path, weights: list[float] | None, output: Path) -> pd.DataFrame:
    """`jigsaw-kit blend`: the inputs rank-blended on test.csv's rows, checked as a submission, written to output."""
    test = read_test(Path(test_path))
    sub = blend_submissions(paths, test, weights)
    check_submission(sub, test[["row_id"]])
    write_csv(sub, Path(output))
    return sub
