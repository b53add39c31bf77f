"""Leak-free cross-validation splits.

Every example text in train.csv is also a train body of the same rule, labelled as its role, so
a plain K-fold leaks labels through the example columns. A fold here is three
competition-shaped frames:

- `bodies`: rows whose body *and* examples are labelled training rows;
- `examples_only`: rows that contribute only their example columns (the test file; in
  `rule-out`, the held-out rule's rows);
- `valid`: the held-out rows, one per distinct (rule, body), keeping their example columns as
  model input, as test rows do on Kaggle.

Schemes:
- `novel`: folds over distinct texts (a text is in one fold whatever its rule), stratified by
  rule and label; each held-out text is purged from every training source (bodies, all example
  columns, the test file's examples).
- `rule-out`: one fold per rule: train on the other rules, label the held-out rule only through
  its example columns, validate on its bodies that are never used as an example anywhere.
- `examples`: Kaggle-shaped: like `novel`, but the held-out rows' own example columns join the
  training rows, so held-out texts may be labelled through other held-out rows' examples (as
  on Kaggle, where test bodies recur as test examples).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .data import EXAMPLE_COLUMNS
from .errors import KitError
from .prep import dedup, melt

SCHEMES = ("novel", "rule-out", "examples")


@dataclass
class Fold:
    name: str
    bodies: pd.DataFrame
    examples_only: pd.DataFrame
    valid: pd.DataFrame  # rule, text(=body), label, example columns, row_id, subreddit
    allow_examples_overlap: bool = False  # the `examples` scheme labels held-out texts on purpose


def _norm(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip()


def purge(frame: pd.DataFrame, held_out: set[str], drop_bodies: bool) -> pd.DataFrame:
    """Drop rows whose body is held out (if drop_bodies) and blank example cells that are."""
    out = frame.copy()
    if drop_bodies:
        out = out[~_norm(out["body"]).isin(held_out)]
    for col in EXAMPLE_COLUMNS:
        out[col] = out[col].where(~_norm(out[col]).isin(held_out), "")
    return out.reset_index(drop=True)


def distinct_bodies(train: pd.DataFrame) -> pd.DataFrame:
    """One row per (rule, body) with the majority label (ties dropped), keeping the first row's other columns."""
    t = train.assign(rule=_norm(train["rule"]), body=_norm(train["body"]))
    g = t.groupby(["rule", "body"], sort=False)["rule_violation"]
    pos, n = g.sum(), g.size()
    first = t.drop_duplicates(["rule", "body"]).set_index(["rule", "body"])
    first["rule_violation"] = (pos * 2 > n).astype("int64")
    return first[(pos * 2 != n)].reset_index()


def _valid_frame(rows: pd.DataFrame) -> pd.DataFrame:
    v = rows.rename(columns={"body": "text", "rule_violation": "label"})
    return v[["row_id", "rule", "text", "subreddit", *EXAMPLE_COLUMNS, "label"]].reset_index(drop=True)


def make_folds(
    train: pd.DataFrame, test: pd.DataFrame | None, scheme: str = "novel", k: int = 5, seed: int = 42
) -> list[Fold]:
    if scheme not in SCHEMES:
        raise KitError(f"unknown CV scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")
    test = test if test is not None else train.iloc[0:0].drop(columns=["rule_violation"])
    distinct = distinct_bodies(train)
    if scheme == "rule-out":
        return _rule_out(train, test, distinct)
    if k < 2:
        raise KitError(f"--folds must be at least 2 for scheme {scheme}, got {k}.")
    strata = distinct["rule"] + "\x1f" + distinct["rule_violation"].astype(str)
    smallest = strata.value_counts().min()
    if smallest < k:
        raise KitError(
            f"a (rule, label) group has only {smallest} distinct texts, fewer than --folds {k}; lower --folds."
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for i, (_, valid_idx) in enumerate(splitter.split(distinct, strata, groups=distinct["body"])):
        valid = distinct.iloc[valid_idx]
        held = set(valid["body"])
        bodies = purge(train, held, drop_bodies=True)
        if scheme == "novel":
            folds.append(Fold(f"fold{i}", bodies, purge(test, held, drop_bodies=False), _valid_frame(valid)))
        else:  # examples: held-out rows lend their example columns (unpurged) as labelled rows
            held_rows = train[_norm(train["body"]).isin(held)].drop(columns=["rule_violation"])
            ex_only = pd.concat([purge(test, held, drop_bodies=False), held_rows], ignore_index=True)
            folds.append(Fold(f"fold{i}", bodies, ex_only, _valid_frame(valid), allow_examples_overlap=True))
    return folds


def _rule_out(train: pd.DataFrame, test: pd.DataFrame, distinct: pd.DataFrame) -> list[Fold]:
    rules = sorted(distinct["rule"].unique())
    if len(rules) < 2:
        raise KitError("scheme rule-out needs at least 2 rules in train.csv.")
    all_examples = set(
        pd.concat([_norm(train[c]) for c in EXAMPLE_COLUMNS] + [_norm(test[c]) for c in EXAMPLE_COLUMNS])
    )
    folds = []
    for i, rule in enumerate(rules):
        in_rule = _norm(train["rule"]) == rule
        valid = distinct[(distinct["rule"] == rule) & ~distinct["body"].isin(all_examples)]
        if valid.empty or valid["rule_violation"].nunique() < 2:
            raise KitError(
                f"rule-out: rule {rule[:60]!r} has no two-class set of bodies unused as examples to validate on."
            )
        held = set(valid["body"])
        bodies = purge(train[~in_rule], held, drop_bodies=True)
        rule_rows = train[in_rule].drop(columns=["rule_violation"])
        ex_only = pd.concat(
            [purge(rule_rows, held, drop_bodies=False), purge(test, held, drop_bodies=False)], ignore_index=True
        )
        folds.append(Fold(f"rule{i}", bodies, ex_only, _valid_frame(valid)))
    return folds


def fold_training_rows(fold: Fold) -> pd.DataFrame:
    """Labelled, deduplicated rows of one fold (not yet templated)."""
    parts = [melt(fold.bodies, "train", include_bodies=True)]
    if not fold.examples_only.empty:
        parts.append(melt(fold.examples_only, "examples", include_bodies=False))
    rows, _ = dedup(pd.concat(parts, ignore_index=True))
    return rows


def leaked_texts(fold: Fold) -> set[str]:
    """Held-out texts found in any training source of the fold (must be empty for novel/rule-out)."""
    held = set(_norm(fold.valid["text"]))
    sources = [_norm(fold.bodies["body"])] + [_norm(fold.bodies[c]) for c in EXAMPLE_COLUMNS]
    if not fold.allow_examples_overlap:
        sources += [_norm(fold.examples_only[c]) for c in EXAMPLE_COLUMNS]
    return held & set(pd.concat(sources)) - {""}
