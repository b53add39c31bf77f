"""hidden_test on the shipped sample data: shape, rules, examples, distinct bodies, the kit's loader accepts it.

PYTHONPATH=src python -m pytest tests/data/test_hidden_test.py -q
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS, TEST_COLUMNS, load_competition
from jigsaw_kit.data.hidden_test import LABELS_FILE, MANIFEST_FILE, score_hidden, synthesize_hidden

from ..conftest import SAMPLE

ROWS = 600


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return synthesize_hidden(SAMPLE, tmp_path_factory.mktemp("h") / "hidden", rows=ROWS, seed=3)


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_shapes_and_per_rule_counts(folder):
    test = _read(folder / "test.csv")
    assert list(test.columns) == TEST_COLUMNS and len(test) == ROWS
    counts = test["rule"].value_counts()
    assert len(counts) == 6 and set(counts) == {ROWS // 6}
    assert test["row_id"].astype(int).is_unique
    assert int(test["row_id"].astype(int).min()) > int(_read(SAMPLE / "train.csv")["row_id"].astype(int).max())
    assert (folder / "train.csv").read_bytes() == (SAMPLE / "train.csv").read_bytes()


def test_four_rules_are_absent_from_train(folder):
    test, train = _read(folder / "test.csv"), _read(SAMPLE / "train.csv")
    unseen = set(test["rule"]) - set(train["rule"].str.strip())
    assert len(unseen) == 4
    labels = pd.read_csv(folder / LABELS_FILE)
    assert set(labels.loc[labels["unseen"], "rule"]) == unseen


def test_bodies_distinct_and_never_among_own_examples(folder):
    test = _read(folder / "test.csv")
    norm = test["body"].str.split().str.join(" ").str.casefold()
    assert norm.is_unique
    for col in EXAMPLE_COLUMNS:
        assert (test[col] != test["body"]).all(), col
    assert (test["positive_example_1"] != test["positive_example_2"]).all()
    assert (test["negative_example_1"] != test["negative_example_2"]).all()
    train = _read(SAMPLE / "train.csv")
    assert not set(norm) & set(train["body"].str.split().str.join(" ").str.casefold())
    lengths = test["body"].str.len()
    assert lengths.min() > 10 and lengths.max() <= 520


def test_examples_come_from_the_rules_bodies_with_their_labels(folder):
    test = _read(folder / "test.csv")
    labels = pd.read_csv(folder / LABELS_FILE)
    label_of = dict(zip(zip(labels["rule"], test["body"]), labels["rule_violation"]))
    assert (labels["row_id"].astype(str) == test["row_id"]).all()
    for col in EXAMPLE_COLUMNS:
        want = 1 if col.startswith("positive") else 0
        got = [label_of.get((r, t)) for r, t in zip(test["rule"], test[col])]
        assert got == [want] * len(test), col


def test_held_out_rows_have_no_sibling_among_examples(folder):
    test = _read(folder / "test.csv")
    labels = pd.read_csv(folder / LABELS_FILE)
    examples = set()
    for col in EXAMPLE_COLUMNS:
        examples |= set(zip(test["rule"], test[col]))
    is_example = np.array([(r, b) in examples for r, b in zip(test["rule"], test["body"])])
    held = labels["held_out"].to_numpy()
    assert 0.3 < held.mean() < 0.7
    assert not (is_example & held).any()  # a held-out body is never an example


def test_sample_submission_matches_and_loader_accepts(folder):
    test, sub = _read(folder / "test.csv"), _read(folder / "sample_submission.csv")
    assert list(sub["row_id"]) == list(test["row_id"])
    comp = load_competition(folder)
    assert len(comp.test) == ROWS and len(comp.sample_submission) == ROWS
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["synthetic"] is True and sum(r["unseen"] for r in manifest["rules"]) == 4


def test_deterministic_given_seed(tmp_path, folder):
    again = synthesize_hidden(SAMPLE, tmp_path / "again", rows=ROWS, seed=3)
    for name in ("test.csv", "sample_submission.csv", LABELS_FILE):
        assert (again / name).read_bytes() == (folder / name).read_bytes()
    other = synthesize_hidden(SAMPLE, tmp_path / "other", rows=ROWS, seed=4)
    assert (other / "test.csv").read_bytes() != (folder / "test.csv").read_bytes()


def test_score_against_hidden_labels(tmp_path, folder):
    labels = pd.read_csv(folder / LABELS_FILE)
    perfect = labels[["row_id"]].assign(rule_violation=labels["rule_violation"].astype(float))
    perfect.to_csv(tmp_path / "sub.csv", index=False)
    res = score_hidden(folder, tmp_path / "sub.csv")
    assert res["mean_rule_auc"] == 1.0 and res["mean_rule_auc_unseen_held_out"] == 1.0 and len(res["per_rule"]) == 6
    rng = np.random.default_rng(0)
    perfect.assign(rule_violation=rng.random(len(perfect))).iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(KitError, match="1 test rows have no prediction"):
        score_hidden(folder, tmp_path / "short.csv")


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "train.csv").write_text("x")
    with pytest.raises(KitError, match="was not written by hidden_test"):
        synthesize_hidden(SAMPLE, tmp_path / "real", rows=ROWS)
    with pytest.raises(KitError, match="unseen"):
        synthesize_hidden(SAMPLE, tmp_path / "x", rows=ROWS, rules=6, unseen=1)  # 5 seen > 4 train rules


def test_cli_writes_runs_and_scores_a_hidden_sized_folder(tmp_path, capsys):
    # the rehearsal loop at a small size: write the folder, run the kit on it, score the submission
    from jigsaw_kit.cli import main

    out, sub = tmp_path / "hidden", tmp_path / "sub.csv"
    assert main(["hidden-test", "--data-dir", str(SAMPLE), "--out", str(out), "--rows", "600"]) == 0
    assert main(["run", "--data-dir", str(out), "--config", "tfidf-lr", "--output", str(sub),
                 "--run-dir", str(tmp_path / "run")]) == 0  # fmt: skip
    assert main(["hidden-test", "--out", str(out), "--score", str(sub)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC folder" in printed and printed.count("unseen  ") == 4
