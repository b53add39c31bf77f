"""The one checked reader of out-of-fold prediction files (oof.csv, as `jigsaw-kit cv` writes them).

blend --oof, blend --oof --fit and anything else that reads an earlier command's OOF go through here, so a
file that cannot be right (a column missing, cells that are not numbers, a row twice, another scheme than
the first input) stops the command with one KitError before any number is computed from it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import finite_column, read_csv_checked
from jigsaw_kit.data.folds import LB_WEIGHTS

REQUIRED = ("rule", "text", "label", "prediction")
REDO = "pass the oof.csv `jigsaw-kit cv` wrote (or run it again)"


def oof_path(p: Path) -> Path:
    """The oof.csv of p: the file itself, or DIR/oof.csv, or DIR/cv/oof.csv."""
    p = Path(p)
    if p.is_dir():
        for cand in (p / "oof.csv", p / "cv" / "oof.csv"):
            if cand.is_file():
                return cand
        raise KitError(f"{p} holds no oof.csv (nor cv/oof.csv): run `jigsaw-kit cv` first.")
    if not p.is_file():
        raise KitError(f"{p} not found.")
    return p


def read_oof(p: Path) -> pd.DataFrame:
    """An OOF file, checked: rule, text (str), label (0/1), prediction (finite), fold (int) and part when present.

    Texts stay text ("NA", "null" are comments, not missing values), so the key a row is joined on is exact.
    """
    path = oof_path(p)
    df = read_csv_checked(path, REDO)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise KitError(
            f"{path}: no column {', '.join(map(repr, missing))} (columns: {list(df.columns)[:8]}); an OOF file "
            f"holds {', '.join(REQUIRED)} (and fold); {REDO}."
        )
    df["label"] = finite_column(df, "label", path, REDO)
    if not df["label"].isin((0.0, 1.0)).all():
        bad = df.loc[~df["label"].isin((0.0, 1.0)), "label"].iloc[0]
        raise KitError(f"{path}: column 'label' must be 0 or 1, found {bad:g}; {REDO}.")
    df["label"] = df["label"].astype(int)
    df["prediction"] = finite_column(df, "prediction", path, REDO)
    if "fold" in df.columns:
        fold = finite_column(df, "fold", path, REDO)
        if (fold != fold.round()).any():
            bad = fold[fold != fold.round()].iloc[0]
            raise KitError(f"{path}: column 'fold' must hold fold numbers (integers), found {bad:g}; {REDO}.")
        df["fold"] = fold.astype(int)
    if "part" in df.columns and not df["part"].isin(list(LB_WEIGHTS)).all():
        bad = df.loc[~df["part"].isin(list(LB_WEIGHTS)), "part"].iloc[0]
        raise KitError(f"{path}: column 'part' (lb-proxy) must be one of {list(LB_WEIGHTS)}, found {bad!r}; {REDO}.")
    key = [c for c in ("part", "rule", "text") if c in df.columns]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        row = df.loc[dup].iloc[0]
        raise KitError(
            f"{path}: {int(dup.sum())} rows share their ({', '.join(key)}), e.g. rule {str(row['rule'])[:40]!r}, text "
            f"{str(row['text'])[:40]!r}: an OOF holds each held-out text once per rule; {REDO}."
        )
    return df


def read_oofs(paths: list[Path]) -> list[pd.DataFrame]:
    """Every input read and checked, and all of one layout: a fold column in all or none (blending ranks within
    folds when there is one), lb-proxy's part column in all or none (a text is held out once per part)."""
    frames = [read_oof(p) for p in paths]
    for col, what in (("part", "an lb-proxy OOF (a part column)"), ("fold", "an OOF with a fold column")):
        for p, f in zip(paths[1:], frames[1:]):
            if (col in f.columns) != (col in frames[0].columns):
                has, lacks = (p, paths[0]) if col in f.columns else (paths[0], p)
                raise KitError(
                    f"{oof_path(p)}: {has} is {what} and {lacks} is not: they come from different schemes (or one "
                    "was edited). Blend the oof.csv files `jigsaw-kit cv` wrote with the same scheme and seed."
                )
    return frames
