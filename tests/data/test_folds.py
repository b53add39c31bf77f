import pandas as pd
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS, load_competition
from jigsaw_kit.data.folds import distinct_bodies, fold_training_rows, leaked_texts, make_folds

from ..conftest import SAMPLE, make_test, make_train


def _all_training_texts(fold) -> set[str]:
    texts = set(fold.bodies["body"].str.strip())
    frames = [fold.bodies] if fold.allow_examples_overlap else [fold.bodies, fold.examples_only]
    for frame in frames:
        for c in EXAMPLE_COLUMNS:
            texts |= set(frame[c].fillna("").str.strip())
    return texts - {""}


def _check_purged(folds, distinct):
    held_all = []
    for fold in folds:
        held = set(fold.valid["text"])
        held_all += list(zip(fold.valid["rule"], fold.valid["text"]))
        assert not (held & _all_training_texts(fold)), fold.name
        assert not leaked_texts(fold)
        # and the melted rows the model actually trains on hold none of them
        assert not (held & set(fold_training_rows(fold)["text"]))
    return held_all


@pytest.fixture(scope="module")
def real(request):
    from ..conftest import REAL

    if not (REAL / "train.csv").is_file():
        pytest.skip("real competition files not available")
    return load_competition(REAL)


@pytest.mark.realdata
def test_novel_purges_every_held_out_text_on_real_files(real):
    distinct = distinct_bodies(real.train)
    folds = make_folds(real.train, real.test, "novel", k=5, seed=0)
    held = _check_purged(folds, distinct)
    # every distinct (rule, body) is held out exactly once
    assert len(held) == len(set(held)) == len(distinct)
    # stratified: each fold's positive rate within 5 points of the whole
    rate = distinct["rule_violation"].mean()
    for fold in folds:
        assert abs(fold.valid["label"].mean() - rate) < 0.05
        for rule, g in fold.valid.groupby("rule"):
            assert len(g) > 0.15 * (distinct["rule"] == rule).sum()


@pytest.mark.realdata
def test_rule_out_on_real_files(real):
    folds = make_folds(real.train, real.test, "rule-out")
    assert len(folds) == real.train["rule"].nunique()
    _check_purged(folds, distinct_bodies(real.train))
    for fold in folds:
        (rule,) = fold.valid["rule"].unique()
        assert rule not in set(fold.bodies["rule"])  # only its examples label it
        rows = fold_training_rows(fold)
        assert set(rows.loc[rows["rule"] == rule, "source"]) <= {
            "examples_positive_example",
            "examples_negative_example",
            "examples_negative_example+examples_positive_example",
        }
        assert fold.valid["label"].nunique() == 2


@pytest.mark.realdata
def test_examples_scheme_lets_held_out_rows_lend_examples(real):
    folds = make_folds(real.train, real.test, "examples", k=5, seed=0)
    some_overlap = False
    for fold in folds:
        held = set(fold.valid["text"])
        assert not (held & set(fold.bodies["body"].str.strip()))  # never as a labelled body
        some_overlap |= bool(held & set(fold_training_rows(fold)["text"]))
    assert some_overlap  # the point of the scheme: train.csv's bodies recur as examples


def test_purge_on_hand_made_frames():
    r = "rule"
    train = make_train(
        [
            (0, "a", r, 1, "b", "c", "d", "e"),
            (1, "b", r, 1, "a", "c", "d", "e"),
            (2, "c", r, 1, "a", "b", "d", "e"),
            (3, "d", r, 0, "a", "b", "c", "e"),
            (4, "e", r, 0, "a", "b", "c", "d"),
            (5, "f", r, 0, "a", "b", "d", "e"),
        ]
    )
    test = make_test([(9, "zz", r, "a", "b", "d", "f")])
    folds = make_folds(train, test, "novel", k=2, seed=1)
    held = _check_purged(folds, distinct_bodies(train))
    assert sorted(t for _, t in held) == list("abcdef")
    for fold in folds:
        # held-out rows keep their own examples as input
        for _, row in fold.valid.iterrows():
            orig = train[train["body"] == row["text"]].iloc[0]
            assert [row[c] for c in EXAMPLE_COLUMNS] == [orig[c] for c in EXAMPLE_COLUMNS]


def test_too_many_folds_is_a_clear_error():
    train = make_train([(i, f"t{i}", "r", i % 2, "", "", "", "") for i in range(4)])
    with pytest.raises(KitError, match="lower --folds"):
        make_folds(train, None, "novel", k=5)


def test_sample_folds_are_clean():
    comp = load_competition(SAMPLE)
    for scheme in ("novel", "rule-out"):
        _check_purged(make_folds(comp.train, comp.test, scheme, k=3), distinct_bodies(comp.train))


def test_distinct_bodies_majority_and_ties():
    train = make_train(
        [
            (0, "x", "r", 1, "", "", "", ""),
            (1, "x", "r", 1, "", "", "", ""),
            (2, "x", "r", 0, "", "", "", ""),
            (3, "t", "r", 1, "", "", "", ""),
            (4, "t", "r", 0, "", "", "", ""),
        ]
    )
    d = distinct_bodies(train)
    assert d[["body", "rule_violation"]].values.tolist() == [["x", 1]]
    assert isinstance(d, pd.DataFrame)


def _lb_proxy_checks(train, test, k):
    folds = make_folds(train, test, "lb-proxy", k=k, seed=0)
    distinct = distinct_bodies(train)
    _check_purged(folds, distinct)
    seen = [f for f in folds if f.part == "seen"]
    unseen = [f for f in folds if f.part == "unseen"]
    assert len(seen) == k and len(seen) + len(unseen) == len(folds)
    # seen folds are novel's, unchanged
    novel = make_folds(train, test, "novel", k=k, seed=0)
    assert [f.valid["text"].tolist() for f in seen] == [f.valid["text"].tolist() for f in novel]
    for rule, g in distinct.groupby("rule"):
        folds_of_rule = [f for f in unseen if set(f.valid["rule"]) == {rule}]
        assert len(folds_of_rule) == k
        # every text of the rule is held out once, not just the never-used ones
        assert sorted(t for f in folds_of_rule for t in f.valid["text"]) == sorted(g["body"])
        for f in folds_of_rule:
            # the unseen rule's own bodies never train: it is known only through example columns
            assert not (f.bodies["rule"].str.strip() == rule).any()
            rows = fold_training_rows(f)
            assert not rows.loc[rows["rule"] == rule, "source"].str.contains("body").any()
    return folds


def test_lb_proxy_on_the_sample():
    comp = load_competition(SAMPLE)
    _lb_proxy_checks(comp.train, comp.test, k=2)


@pytest.mark.realdata
def test_lb_proxy_on_real_files(real):
    folds = _lb_proxy_checks(real.train, real.test, k=5)
    assert len(folds) == 5 + 5 * real.train["rule"].nunique()
