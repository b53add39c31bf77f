"""Locate and load the competition files, and refuse bad ones with a message that says why.

Where data is looked for, in order: an explicit directory; Kaggle's two mount layouts under
`/kaggle/input` (root overridable, for tests); `kagglehub.competition_download` when the user
has credentials and a network. Only this module knows where competition data lives.

Bad input, and what happens to it (tests/data/test_data.py and tests/cli/test_hostile.py hold each case):

- Refused with a KitError naming file, column, row and fix: an empty (0-byte) file; a header
  with no rows (train.csv, test.csv); missing, renamed or extra columns (an extra column usually
  means the wrong file, e.g. train.csv passed as test.csv); a header with no comma but `;`, tab or
  `|` (wrong delimiter); rows with more fields than the header (an unquoted comma, a trailing
  delimiter: pandas would otherwise shift or drop cells silently); unbalanced quotes; bytes that
  are not UTF-8 (latin-1, UTF-16), with the line of the first bad byte; row_id missing, not an
  integer or duplicated; rule_violation missing or not 0/1; sample_submission.csv row_ids that
  differ from test.csv's (set or order); an empty body or rule in train.csv (a public file the
  user can fix).
- Handled: a UTF-8 byte-order mark is dropped; columns in another order are reordered; short rows
  and missing cells read as empty strings (`NA`, `null`, `NaN` are text, never missing values);
  rule_violation written as `1.0`/`0.0` is accepted.
- An empty or whitespace-only body or rule in test.csv is scored, not refused, with a warning
  that lists the row_ids: the hidden test set is only seen inside a Kaggle submission, and one odd
  row must not cost a whole (hours long) submission. Such a row gets whatever the model says about
  an empty comment under its rule.
- Text is kept as given: emoji, right-to-left and zero-width marks, control characters, HTML
  entities and markdown links are not rewritten (the tokenizer normalises what it must); only
  whitespace (str.isspace) counts as empty. Empty example cells are skipped, so a test row whose
  examples are all empty still gets a prediction, and a rule absent from train.csv is learnt from
  the test file's examples.
- Very long cells are cut to their first MAX_TEXT_CHARS characters (MAX_RULE_CHARS for rule), with a
  warning listing the row_ids. The tokenizer keeps only max_length tokens anyway, but its pair
  truncation costs time and memory in proportion to len(rule) x len(body): a 100 kB rule next to a
  100 kB comment takes gigabytes. 20,000 characters hold far more than the 256-512 tokens a BERT-sized
  max_length keeps (TF-IDF sees the cut text too).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.paths import sha256_file

log = logging.getLogger(__name__)
COMPETITION = "jigsaw-agile-community-rules"
EXAMPLE_COLUMNS = ["positive_example_1", "positive_example_2", "negative_example_1", "negative_example_2"]
TEST_COLUMNS = ["row_id", "body", "rule", "subreddit", *EXAMPLE_COLUMNS]
TRAIN_COLUMNS = [*TEST_COLUMNS, "rule_violation"]
SUBMISSION_COLUMNS = ["row_id", "rule_violation"]
FILES = ("train.csv", "test.csv", "sample_submission.csv")
MAX_TEXT_CHARS = 20_000  # body, examples, subreddit (see the module docstring)
MAX_RULE_CHARS = 2_000
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


def _not_utf8(path: Path) -> KitError:
    """Where the first non-UTF-8 byte is, and what the file probably is."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        where = ""
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        where = f" at line {line} (byte {e.start}: 0x{raw[e.start]:02x})"
    kind = (
        " It looks like UTF-16 (Excel's 'Unicode Text')."
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        else " It is probably latin-1/cp1252."
    )
    return KitError(
        f"{path}: not UTF-8{where}.{kind} Re-save the file as UTF-8 "
        f"(e.g. iconv -f cp1252 -t utf-8 {path.name} > fixed.csv) or re-download it from the competition page."
    )


def _first_long_row(path: Path, n_columns: int) -> str:
    """The first data row with more fields than the header, for the error message (1 = first data row)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for i, row in enumerate(csv.reader(f)):
                if i and len(row) > n_columns:
                    return f"data row {i} (row_id {row[0]!r}) has {len(row)} fields"
    except (csv.Error, UnicodeDecodeError):
        pass
    return "some rows have more fields than the header"


def _read_csv(path: Path) -> pd.DataFrame:
    with open(path, "rb") as f:
        header = f.readline(1 << 16).decode("utf-8", errors="replace")
    if header.strip() and "," not in header:
        seps = [name for sep, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")) if sep in header]
        if seps:
            raise KitError(
                f"{path}: the header is separated by {seps[0]}, not by commas ({header.strip()[:80]!r}). "
                "Re-save it as a comma-separated CSV (or use the file exactly as the competition distributes it)."
            )
    try:
        with warnings.catch_warnings():
            # index_col=False: a trailing delimiter must not silently turn row_id into the index;
            # pandas then only warns that cells are dropped, and a dropped cell is an error here.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # keep_default_na=False: a comment reading "NA" or "null" is text, not missing.
            # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column name.
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise KitError(f"{path}: the file is empty. Re-download it from the competition page.") from None
    except pd.errors.ParserWarning:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            n_columns = len(next(csv.reader(io.StringIO(f.readline())), []))
        raise KitError(
            f"{path}: {_first_long_row(path, n_columns)}, more than the header's {n_columns}. "
            "Quote text that holds commas and drop trailing delimiters (re-save with a CSV writer)."
        ) from None
    except pd.errors.ParserError as e:
        raise KitError(
            f"{path}: cannot be parsed as CSV ({str(e).strip()}). Check the delimiter (must be ',') and that "
            'every quote is closed (quotes inside text are doubled: "").'
        ) from None
    # Short rows read as NaN even with keep_default_na=False; an absent cell is an empty string here.
    return df.fillna("")


def _rows(ids: pd.Index | list, limit: int = 5) -> str:
    ids = list(ids)
    if not ids:
        return "none"
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


def _data_rows(index: pd.Index) -> str:
    # Data rows, not file lines: a quoted comment can span several lines.
    return f"data row(s) {_rows(index + 1)} (1 = the first row after the header)"


def finite_column(df: pd.DataFrame, col: str, path: Path, fix: str) -> pd.Series:
    """A column as finite floats; KitError naming the first bad cell (blank, text, nan or inf)."""
    x = pd.to_numeric(df[col], errors="coerce")
    bad = ~np.isfinite(x.to_numpy(dtype=float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise KitError(
            f"{path}: column {col!r} holds {int(bad.sum())} cell(s) that are not finite numbers "
            f"(data row {i + 1}: {df[col].iloc[i]!r}); {fix}."
        )
    return x.astype(float)


def read_csv_checked(path: Path, fix: str) -> pd.DataFrame:
    """A CSV an earlier command wrote (OOF, submission), read as the competition files are, with rows;
    `fix` ends each message (what to pass instead)."""
    try:
        if Path(path).stat().st_size == 0:  # said here: the competition reader's advice is to re-download
            raise KitError(f"{path}: the file is empty; {fix}.")
        df = _read_csv(path)
    except OSError as e:
        raise KitError(f"{path}: cannot be read ({e.strerror or e}); {fix}.") from None
    if len(df) == 0:
        raise KitError(f"{path}: header only, no rows; {fix}.")
    return df


def _check_ids(df: pd.DataFrame, path: Path) -> pd.Series:
    ids = pd.to_numeric(df["row_id"].str.strip(), errors="coerce")
    # 2**53: beyond it a float no longer holds every integer, so ids could collide silently.
    bad = df.index[ids.isna() | ~ids.abs().lt(2**53) | (ids % 1 != 0)]
    if len(bad):
        shown = sorted(set(df.loc[bad, "row_id"]))[:5]
        raise KitError(
            f"{path}: column row_id must hold integers; got {shown} at {_data_rows(bad)}. "
            "Every row needs its competition row_id."
        )
    ids = ids.astype("int64")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise KitError(f"{path}: column row_id has duplicates: {_rows(sorted(set(dup)))}. Each row_id must be unique.")
    return ids


def _empty(df: pd.DataFrame, col: str) -> pd.Index:
    return df.index[df[col].str.strip() == ""]


def _check_text(df: pd.DataFrame, cols: list[str], path: Path) -> None:
    for col in cols:
        empty = _empty(df, col)
        if len(empty):
            raise KitError(
                f"{path}: column {col} is empty at row_id(s) {_rows(df.loc[empty, 'row_id'])}. "
                "Every comment needs text: fix or drop those rows."
            )


def _warn_text(df: pd.DataFrame, cols: list[str], path: Path) -> None:
    # test.csv: the hidden file is only seen inside a Kaggle submission; scoring an odd row
    # beats losing the submission, so say which rows and go on.
    for col in cols:
        empty = _empty(df, col)
        if len(empty):
            log.warning(
                "%s: column %s is empty at %d row_id(s) %s; they are scored as empty text.",
                path,
                col,
                len(empty),
                _rows(df.loc[empty, "row_id"], limit=20),
            )


def _cap_lengths(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in ["rule", "body", "subreddit", *EXAMPLE_COLUMNS]:
        cap = MAX_RULE_CHARS if col == "rule" else MAX_TEXT_CHARS
        long = df.index[df[col].str.len() > cap]
        if len(long):
            log.warning(
                "%s: column %s is longer than %d characters at row_id(s) %s; cut to that length.",
                path,
                col,
                cap,
                _rows(df.loc[long, "row_id"], limit=20),
            )
            df[col] = df[col].str.slice(0, cap)
    return df


def _labels(df: pd.DataFrame, path: Path) -> pd.Series:
    raw = df["rule_violation"].str.strip()
    num = pd.to_numeric(raw, errors="coerce")  # "1.0" from a float re-save is still 1
    bad = df.index[~num.isin([0, 1])]
    if len(bad):
        got = sorted({repr(v) for v in df.loc[bad, "rule_violation"]})[:5]
        raise KitError(
            f"{path}: column rule_violation must be 0 or 1; got {', '.join(got)} at row_id(s) "
            f"{_rows(df.loc[bad, 'row_id'])}. Fix or drop those rows."
        )
    return num.astype("int64")


def validate_train(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, TRAIN_COLUMNS, path)
    df = df[TRAIN_COLUMNS].copy()
    df["row_id"] = _check_ids(df, path)
    _check_text(df, ["body", "rule"], path)
    df["rule_violation"] = _labels(df, path)
    return _cap_lengths(df, path)


def validate_test(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, TEST_COLUMNS, path)
    df = df[TEST_COLUMNS].copy()
    df["row_id"] = _check_ids(df, path)
    _warn_text(df, ["body", "rule"], path)
    return _cap_lengths(df, path)


def validate_submission_frame(sub: pd.DataFrame, test: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(sub, SUBMISSION_COLUMNS, path)
    sub = sub[SUBMISSION_COLUMNS].copy()
    sub["row_id"] = _check_ids(sub, path)
    if list(sub["row_id"]) != list(test["row_id"]):
        missing = sorted(set(test["row_id"]) - set(sub["row_id"]))
        extra = sorted(set(sub["row_id"]) - set(test["row_id"]))
        what = (
            f"in test.csv only: {_rows(missing)}; in {path.name} only: {_rows(extra)}"
            if missing or extra
            else "same ids, other order"
        )
        raise KitError(
            f"{path}: row_id must equal test.csv's row_id in the same order ({what}). Use the test.csv and "
            "sample_submission.csv of one download; a row split by a stray line break also shows up here."
        )
    return sub


def load_competition(data_dir: str | Path | None = None, kaggle_root: str | Path | None = None) -> CompetitionData:
    """Locate, read and validate the three files."""
    d = locate_data_dir(data_dir, kaggle_root)
    paths = {f: d / f for f in FILES}
    frames = {}
    for name, validate in (("train.csv", validate_train), ("test.csv", validate_test)):
        frames[name] = validate(_read_csv(paths[name]), paths[name])
        if len(frames[name]) == 0:
            raise KitError(f"{paths[name]}: header only, no rows. Re-download it from the competition page.")
    train, test = frames["train.csv"], frames["test.csv"]
    sample = validate_submission_frame(_read_csv(paths["sample_submission.csv"]), test, paths["sample_submission.csv"])
    return CompetitionData(train, test, sample, d, {f: sha256_file(p) for f, p in paths.items()})
