"""Locate and load the competition files, and refuse bad ones with a message that says why.

Where data is looked for, in order: an explicit directory; Kaggle's two mount layouts under
`/kaggle/input` (root overridable, for tests); `kagglehub.competition_download` when the user
has credentials and a network. Only this module knows where competition data lives.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import KitError

COMPETITION = "jigsaw-agile-community-rules"
EXAMPLE_COLUMNS = ["positive_example_1", "positive_example_2", "negative_example_1", "negative_example_2"]
TEST_COLUMNS = ["row_id", "body", "rule", "subreddit", *EXAMPLE_COLUMNS]
TRAIN_COLUMNS = [*TEST_COLUMNS, "rule_violation"]
SUBMISSION_COLUMNS = ["row_id", "rule_violation"]
FILES = ("train.csv", "test.csv", "sample_submission.csv")
KAGGLE_MOUNTS = (Path(COMPETITION), Path("competitions") / COMPETITION)


@dataclass
class CompetitionData:
    train: pd.DataFrame
    test: pd.DataFrame
    sample_submission: pd.DataFrame
    data_dir: Path
    hashes: dict[str, str] = field(default_factory=dict)


def _has_files(d: Path) -> bool:
    return all((d / f).is_file() for f in FILES)


def locate_data_dir(data_dir: str | Path | None = None, kaggle_root: str | Path | None = None) -> Path:
    """The folder holding train.csv, test.csv and sample_submission.csv."""
    tried: list[str] = []
    if data_dir is not None:
        d = Path(data_dir)
        if _has_files(d):
            return d
        missing = [f for f in FILES if not (d / f).is_file()]
        raise KitError(
            f"--data-dir {d}: missing {', '.join(missing)}. Point --data-dir at the folder that holds "
            f"{', '.join(FILES)} (e.g. ../shared/data/{COMPETITION} or data/sample)."
        )
    root = Path(kaggle_root or os.environ.get("JIGSAW_KIT_KAGGLE_INPUT", "/kaggle/input"))
    for rel in KAGGLE_MOUNTS:
        d = root / rel
        if _has_files(d):
            return d
        tried.append(f"{d} (not there)")
    try:
        import kagglehub

        d = Path(kagglehub.competition_download(COMPETITION))
        if _has_files(d):
            return d
        tried.append(f"kagglehub.competition_download -> {d} (files missing)")
    except Exception as e:  # kagglehub raises many types (no credentials, no network, 403)
        tried.append(
            f"kagglehub.competition_download ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        )
    raise KitError(
        "could not find the competition data. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nFix: pass --data-dir DIR with {', '.join(FILES)}; on Kaggle attach the competition "
        "to the notebook; elsewhere set Kaggle credentials (~/.kaggle/kaggle.json) with network access."
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # keep_default_na=False: a comment reading "NA" or "null" is text, not missing.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KitError(f"{path}: not UTF-8 ({e}). Re-save the file as UTF-8.") from None
    except pd.errors.EmptyDataError:
        raise KitError(f"{path}: the file is empty. Re-download it from the competition page.") from None
    except pd.errors.ParserError as e:
        raise KitError(f"{path}: cannot be parsed as CSV ({str(e).strip()}). Check delimiter and quoting.") from None


def _rows(ids: pd.Index | list, limit: int = 5) -> str:
    ids = list(ids)
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(str(i) for i in ids[:limit]) + more


def _check_columns(df: pd.DataFrame, expected: list[str], path: Path) -> None:
    got = list(df.columns)
    if got == expected:
        return
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    hint = ""
    if len(got) == 1 and any(sep in got[0] for sep in (";", "\t", "|")):
        hint = " The header looks like one column: is the file comma-separated?"
    if not missing and not extra:
        # Same set, other order: harmless, reorder rather than refuse.
        return
    raise KitError(
        f"{path}: expected columns {expected}; missing {missing}, unexpected {extra}.{hint} "
        "Use the files exactly as the competition distributes them."
    )


def _check_ids(df: pd.DataFrame, path: Path) -> pd.Series:
    ids = pd.to_numeric(df["row_id"], errors="coerce")
    bad = df.index[ids.isna() | (ids % 1 != 0)]
    if len(bad):
        raise KitError(f"{path}: column row_id must hold integers; bad at line(s) {_rows(bad + 2)}.")
    ids = ids.astype("int64")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise KitError(f"{path}: column row_id has duplicates: {_rows(sorted(set(dup)))}. Each row_id must be unique.")
    return ids


def _check_text(df: pd.DataFrame, cols: list[str], path: Path) -> None:
    for col in cols:
        empty = df.index[df[col].str.strip() == ""]
        if len(empty):
            raise KitError(
                f"{path}: column {col} is empty at row_id(s) {_rows(df.loc[empty, 'row_id'])}. "
                "Every comment needs text: fix or drop those rows."
            )


def validate_train(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, TRAIN_COLUMNS, path)
    df = df[TRAIN_COLUMNS].copy()
    df["row_id"] = _check_ids(df, path)
    _check_text(df, ["body", "rule"], path)
    labels = df["rule_violation"].str.strip()
    bad = df.index[~labels.isin(["0", "1"])]
    if len(bad):
        raise KitError(
            f"{path}: column rule_violation must be 0 or 1; got {sorted(set(df.loc[bad, 'rule_violation']))[:5]} "
            f"at row_id(s) {_rows(df.loc[bad, 'row_id'])}."
        )
    df["rule_violation"] = labels.astype("int64")
    return df


def validate_test(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, TEST_COLUMNS, path)
    df = df[TEST_COLUMNS].copy()
    df["row_id"] = _check_ids(df, path)
    _check_text(df, ["body", "rule"], path)
    return df


def validate_submission_frame(sub: pd.DataFrame, test: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(sub, SUBMISSION_COLUMNS, path)
    sub = sub[SUBMISSION_COLUMNS].copy()
    sub["row_id"] = _check_ids(sub, path)
    if list(sub["row_id"]) != list(test["row_id"]):
        missing = sorted(set(test["row_id"]) - set(sub["row_id"]))
        extra = sorted(set(sub["row_id"]) - set(test["row_id"]))
        what = (
            f"missing from it: {_rows(missing)}; not in test.csv: {_rows(extra)}"
            if missing or extra
            else "same ids, other order"
        )
        raise KitError(f"{path}: row_id must equal test.csv's row_id in the same order ({what}).")
    return sub


def load_competition(data_dir: str | Path | None = None, kaggle_root: str | Path | None = None) -> CompetitionData:
    """Locate, read and validate the three files."""
    d = locate_data_dir(data_dir, kaggle_root)
    paths = {f: d / f for f in FILES}
    train = validate_train(_read_csv(paths["train.csv"]), paths["train.csv"])
    test = validate_test(_read_csv(paths["test.csv"]), paths["test.csv"])
    sample = validate_submission_frame(_read_csv(paths["sample_submission.csv"]), test, paths["sample_submission.csv"])
    if len(train) == 0:
        raise KitError(f"{paths['train.csv']}: header only, no rows.")
    if len(test) == 0:
        raise KitError(f"{paths['test.csv']}: header only, no rows.")
    return CompetitionData(train, test, sample, d, {f: _sha256(p) for f, p in paths.items()})
