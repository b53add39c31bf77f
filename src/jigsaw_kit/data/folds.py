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
- `examples`: train.csv-shaped: like `novel`, but the held-out rows' own example columns join
  the training rows, so held-out texts may be labelled through other held-out rows' examples.
  The hidden test is not built like this (no hidden row's body is among its own examples, and
  only ~13% of public rows share a text with a private body), so this scheme flatters lookups.
- `lb-proxy`: what the leaderboard scores, 2 seen rules and 4 unseen ones. Its `seen` folds are
  `novel`'s; its `unseen` folds treat each public rule in turn as unseen: k folds over all of
  that rule's distinct texts, the rule's labels come only from its example columns outside the
  fold (its bodies' own labels are not used), the other rules train as usual. The headline
  weighs the parts (2 x seen + 4 x unseen) / 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS
from jigsaw_kit.data.prep import dedup, melt

SCHEMES = ("novel", "rule-out", "examples", "lb-proxy")
LB_WEIGHTS = {"seen": 2, "unseen": 4}  # the hidden test: 2 rules in train.csv, 4 absent


@dataclass
class Fold:
    name: str
    bodies: pd.DataFrame
    examples_only: pd.DataFrame
    valid: pd.DataFrame  # rule, text(=body), label, example columns, row_id, subreddit
    allow_examples_overlap: bool = False  # the `examples` scheme labels held-out texts on purpose
    part: str = ""  # lb-proxy: "seen" or "unseen"


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
    if scheme == "lb-proxy":
        seen = make_folds(train, test, "novel", k, seed)
        for f in seen:
            f.name, f.part = f"seen-{f.name}", "seen"
        return seen + _unseen(train, test, distinct, k, seed)
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
    unused = never_used_texts(train, test)
    folds = []
    for i, rule in enumerate(rules):
        in_rule = _norm(train["rule"]) == rule
        valid = distinct[(distinct["rule"] == rule) & distinct["body"].isin(unused)]
        if valid.empty or valid["rule_violation"].nunique() < 2:
            raise KitError(
                f"rule-out: rule {rule[:60]!r} has no two-class set of bodies unused as examples to validate on."
            )
        folds.append(_unseen_rule_fold(f"rule{i}", train, test, in_rule, valid))
    return folds


def _unseen_rule_fold(
    name: str, train: pd.DataFrame, test: pd.DataFrame, in_rule: pd.Series, valid: pd.DataFrame
) -> Fold:
    """Validate on `valid` (texts of one rule); that rule is labelled only through its example columns."""
    held = set(valid["body"])
    bodies = purge(train[~in_rule], held, drop_bodies=True)
    rule_rows = train[in_rule].drop(columns=["rule_violation"])
    ex_only = pd.concat(
        [purge(rule_rows, held, drop_bodies=False), purge(test, held, drop_bodies=False)], ignore_index=True
    )
    return Fold(name, bodies, ex_only, _valid_frame(valid))


def _unseen(train: pd.DataFrame, test: pd.DataFrame, distinct: pd.DataFrame, k: int, seed: int) -> list[Fold]:
    """lb-proxy's unseen part: each rule in turn is known only through its example columns."""
    folds = []
    for r, rule in enumerate(sorted(distinct["rule"].unique())):
        in_rule = _norm(train["rule"]) == rule
        texts = distinct[distinct["rule"] == rule].reset_index(drop=True)
        smallest = texts["rule_violation"].value_counts().reindex([0, 1], fill_value=0).min()
        if smallest < k:
            raise KitError(
                f"lb-proxy: rule {rule[:60]!r} has only {smallest} distinct texts of one label, fewer than "
                f"--folds {k}; lower --folds."
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        for i, (_, valid_idx) in enumerate(splitter.split(texts, texts["rule_violation"])):
            fold = _unseen_rule_fold(f"unseen{r}-fold{i}", train, test, in_rule, texts.iloc[valid_idx])
            fold.part = "unseen"
            folds.append(fold)
    return folds


def fold_training_rows(fold: Fold) -> pd.DataFrame:
    """Labelled, deduplicated rows of one fold (not yet templated)."""
    parts = [melt(fold.bodies, "train", include_bodies=True)]
    if not fold.examples_only.empty:
        parts.append(melt(fold.examples_only, "examples", include_bodies=False))
    rows, _ = dedup(pd.concat(parts, ignore_index=True))
    return rows


def never_used_texts(train: pd.DataFrame, test: pd.DataFrame | None) -> set[str]:
    """Train bodies that appear in no example column of either file (the host's label-noisy leftovers)."""
    frames = [train] + ([test] if test is not None else [])
    used = set(pd.concat([_norm(f[c]) for f in frames for c in EXAMPLE_COLUMNS]))
    return set(_norm(train["body"])) - used


def leaked_texts(fold: Fold) -> set[str]:
    """Held-out texts found in any training source of the fold (must be empty for novel/rule-out)."""
    held = set(_norm(fold.valid["text"]))
    sources = [_norm(fold.bodies["body"])] + [_norm(fold.bodies[c]) for c in EXAMPLE_COLUMNS]
    if not fold.allow_examples_overlap:
        sources += [_norm(fold.examples_only[c]) for c in EXAMPLE_COLUMNS]
    return held & set(pd.concat(sources)) - {""}
