"""Melt the competition frames into labelled rows, deduplicate them, and apply a template.

One labelled row per (rule, text): train bodies keep their label; positive example columns
give label 1 and negative ones label 0, in train and, on purpose, in test (on Kaggle the test
file's examples are the only labelled data for its unseen rules). Duplicates of a
(rule, text) pair are merged by majority vote, ignoring subreddit; ties are dropped.

    python build_dataset.py --data-dir data/sample --out data/processed
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from jigsaw_kit.core.templates import render
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS

ROW_COLUMNS = ["rule", "text", "label", "source", "subreddit", "origin_row_id"]


@dataclass
class DedupStats:
    rows_in: int
    rows_out: int
    duplicates_merged: int  # rows folded into another row with the same (rule, text)
    conflicts_majority: int  # (rule, text) pairs with mixed votes where a majority decided
    ties_dropped: int  # (rule, text) pairs with an even split of votes, dropped

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _example_label(col: str) -> int:
    return 1 if col.startswith("positive") else 0


def melt(frame: pd.DataFrame, split: str, include_bodies: bool) -> pd.DataFrame:
    """Rows (rule, text, label, source, subreddit, origin_row_id) from one competition frame.

    `split` is "train" or "test"; test bodies have no label, so include_bodies must be False there.
    Empty example cells are skipped (a row with no examples still contributes its body).
    """
    parts = []
    if include_bodies:
        parts.append(
            pd.DataFrame(
                {
                    "rule": frame["rule"],
                    "text": frame["body"],
                    "label": frame["rule_violation"].astype("int64"),
                    "source": f"{split}_body",
                    "subreddit": frame["subreddit"],
                    "origin_row_id": frame["row_id"],
                }
            )
        )
    for col in EXAMPLE_COLUMNS:
        parts.append(
            pd.DataFrame(
                {
                    "rule": frame["rule"],
                    "text": frame[col],
                    "label": _example_label(col),
                    "source": f"{split}_{col.rsplit('_', 1)[0]}",  # e.g. train_positive_example
                    "subreddit": frame["subreddit"],
                    "origin_row_id": frame["row_id"],
                }
            )
        )
    rows = pd.concat(parts, ignore_index=True)
    rows["text"] = rows["text"].fillna("").astype(str).str.strip()
    rows["rule"] = rows["rule"].astype(str).str.strip()
    rows = rows[rows["text"] != ""].reset_index(drop=True)
    rows["label"] = rows["label"].astype("int64")
    return rows[ROW_COLUMNS]


def dedup(rows: pd.DataFrame) -> tuple[pd.DataFrame, DedupStats]:
    """One row per (rule, text) with the majority label; ties dropped. Sources are joined with '+'."""
    if rows.empty:
        return rows.assign(votes=pd.Series(dtype="int64")), DedupStats(0, 0, 0, 0, 0)
    g = rows.groupby(["rule", "text"], sort=False)
    agg = g.agg(
        pos=("label", "sum"),
        votes=("label", "size"),
        source=("source", lambda s: "+".join(sorted(set(s)))),
        subreddit=("subreddit", "first"),
        origin_row_id=("origin_row_id", "first"),
    ).reset_index()
    neg = agg["votes"] - agg["pos"]
    tie = agg["pos"] == neg
    mixed = (agg["pos"] > 0) & (neg > 0)
    out = agg[~tie].copy()
    out["label"] = (out["pos"] > out["votes"] - out["pos"]).astype("int64")
    out = out[[*ROW_COLUMNS, "votes"]].reset_index(drop=True)
    stats = DedupStats(
        rows_in=len(rows),
        rows_out=len(out),
        duplicates_merged=len(rows) - len(agg),
        conflicts_majority=int((mixed & ~tie).sum()),
        ties_dropped=int(tie.sum()),
    )
    return out, stats


# Sources of rows labelled only through example columns of unlabelled rows: the test file
# (`test_*`) and, in CV, the held-out rule's or held-out rows' examples (`examples_*`).
_EXAMPLE_ONLY_SOURCES = ("test_", "examples_")


def from_test_examples(rows: pd.DataFrame) -> pd.Series:
    """Which rows the test file's examples (or CV's held-out examples) labelled: those upsampling repeats."""
    return rows["source"].str.split("+").map(lambda parts: any(p.startswith(_EXAMPLE_ONLY_SOURCES) for p in parts))


def upsample_test_examples(rows: pd.DataFrame, factor: int) -> pd.DataFrame:
    """Repeat rows that come from the test file's examples `factor` times in all.

    They are the only labels of Kaggle's unseen rules and the closest to the test distribution;
    top solutions trained on them twice. factor 1 returns the rows unchanged.
    """
    if factor <= 1:
        return rows
    extra = pd.concat([rows[from_test_examples(rows)]] * (factor - 1), ignore_index=True)
    return pd.concat([rows, extra], ignore_index=True)


def apply_template(rows: pd.DataFrame, template: str) -> pd.DataFrame:
    """Add model inputs `input_a` / `input_b` (None when the template is single-sequence)."""
    pairs = [render(template, r, t, s) for r, t, s in zip(rows["rule"], rows["text"], rows["subreddit"])]
    out = rows.copy()
    out["input_a"] = [a for a, _ in pairs]
    out["input_b"] = [b for _, b in pairs]
    return out


def training_rows(
    train: pd.DataFrame, test: pd.DataFrame | None, use_test_examples: bool = True
) -> tuple[pd.DataFrame, DedupStats]:
    """All labelled rows for training: train bodies + train examples (+ test examples), deduplicated."""
    parts = [melt(train, "train", include_bodies=True)]
    if test is not None and use_test_examples:
        parts.append(melt(test, "test", include_bodies=False))
    return dedup(pd.concat(parts, ignore_index=True))


def rows_to_predict(test: pd.DataFrame) -> pd.DataFrame:
    """The rows to predict, one per test row_id, in file order (the order of sample_submission)."""
    return pd.DataFrame(
        {
            "row_id": test["row_id"].astype("int64"),
            "rule": test["rule"].astype(str).str.strip(),
            "text": test["body"].astype(str).str.strip(),
            "subreddit": test["subreddit"],
            **{c: test[c] for c in EXAMPLE_COLUMNS},
        }
    ).reset_index(drop=True)
