import pandas as pd

from jigsaw_kit.core.templates import TEMPLATES
from jigsaw_kit.data.prep import apply_template, dedup, melt, rows_to_predict, training_rows

from ..conftest import RULE_A, RULE_B, make_test, make_train


def test_melt_labels_bodies_and_examples():
    train = make_train([(0, "buy now", RULE_A, 1, "p1", "p2", "n1", "n2")])
    rows = melt(train, "train", include_bodies=True)
    got = dict(zip(rows["text"], zip(rows["label"], rows["source"])))
    assert got == {
        "buy now": (1, "train_body"),
        "p1": (1, "train_positive_example"),
        "p2": (1, "train_positive_example"),
        "n1": (0, "train_negative_example"),
        "n2": (0, "train_negative_example"),
    }


def test_melt_test_examples_are_labelled_and_bodies_are_not():
    test = make_test([(10, "unlabelled body", RULE_B, "tp1", "tp2", "tn1", "")])
    rows = melt(test, "test", include_bodies=False)
    assert "unlabelled body" not in set(rows["text"])
    assert dict(zip(rows["text"], rows["label"])) == {"tp1": 1, "tp2": 1, "tn1": 0}  # empty cell skipped
    assert set(rows["source"]) == {"test_positive_example", "test_negative_example"}


def test_dedup_majority_ties_and_counts():
    rows = pd.DataFrame(
        {
            "rule": [RULE_A] * 6 + [RULE_B],
            "text": ["x", "x", "x", "tie", "tie", "solo", "x"],
            "label": [1, 1, 0, 1, 0, 0, 0],
            "source": ["train_body", "train_positive_example", "train_negative_example", "a", "b", "c", "d"],
            "subreddit": ["s1", "s2", "s3", "s", "s", "s", "s"],
            "origin_row_id": range(7),
        }
    )
    out, stats = dedup(rows)
    labels = {(r, t): lab for r, t, lab in zip(out["rule"], out["text"], out["label"])}
    # same text under another rule is another row; subreddit is ignored for identity
    assert labels == {(RULE_A, "x"): 1, (RULE_A, "solo"): 0, (RULE_B, "x"): 0}
    assert stats.rows_in == 7 and stats.rows_out == 3
    assert stats.ties_dropped == 1 and stats.conflicts_majority == 1 and stats.duplicates_merged == 3
    assert out.loc[(out["rule"] == RULE_A) & (out["text"] == "x"), "votes"].item() == 3


def test_training_rows_include_test_examples_only_when_asked():
    train = make_train([(0, "b0", RULE_A, 0, "p", "p2", "n", "n2")])
    test = make_test([(5, "t", RULE_B, "unseen_pos", "u2", "unseen_neg", "u4")])
    with_test, _ = training_rows(train, test, use_test_examples=True)
    without, _ = training_rows(train, test, use_test_examples=False)
    assert RULE_B in set(with_test["rule"]) and RULE_B not in set(without["rule"])
    assert "t" not in set(with_test["text"])


def test_whitespace_is_stripped_before_dedup():
    train = make_train([(0, "  same  ", RULE_A, 1, "same", "p2", "n1", "n2")])
    rows, stats = training_rows(train, None)
    assert (rows["text"] == "same").sum() == 1 and stats.duplicates_merged == 1


def test_templates_default_ignores_subreddit():
    rows = pd.DataFrame({"rule": ["R"], "text": ["T"], "subreddit": ["secret_sub"]})
    a = apply_template(rows, "rule-body")
    assert (a["input_a"].item(), a["input_b"].item()) == ("R", "T")
    for name in TEMPLATES:
        out = apply_template(rows, name)
        joined = f"{out['input_a'].item()} {out['input_b'].item()}"
        assert "R" in joined and "T" in joined
        assert ("secret_sub" in joined) == (name == "rule-subreddit-body")


def test_test_rows_keep_order_and_ids():
    test = make_test([(7, "b7", RULE_A, "", "", "", ""), (3, "b3", RULE_B, "p", "p", "n", "n")])
    out = rows_to_predict(test)
    assert out["row_id"].tolist() == [7, 3] and out["text"].tolist() == ["b7", "b3"]


def test_upsample_test_examples_repeats_only_rows_labelled_by_test_or_held_out_examples():
    from jigsaw_kit.data.prep import upsample_test_examples

    rows = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d"],
            "source": [
                "train_body",
                "test_positive_example",
                "train_body+test_negative_example",
                "examples_positive_example",
            ],
        }
    )
    assert upsample_test_examples(rows, 1) is rows
    out = upsample_test_examples(rows, 3)
    assert out["text"].value_counts().to_dict() == {"a": 1, "b": 3, "c": 3, "d": 3}
