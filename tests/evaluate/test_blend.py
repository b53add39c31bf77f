import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.cli import main
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.blend import blend, blend_oof, blend_submissions, rank_within_rule

from ..conftest import make_test


def test_rank_within_rule_known_values():
    rules = ["a", "a", "a", "b", "b"]
    scores = [0.9, 0.1, 0.5, 0.01, 0.02]
    np.testing.assert_allclose(rank_within_rule(rules, scores), [1.0, 0.0, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(rank_within_rule(["a", "a", "c"], [0.3, 0.3, 0.7]), [0.5, 0.5, 0.5])  # ties, singleton


def test_blend_uses_ranks_not_scales():
    rules = ["a"] * 3
    m1 = [0.50, 0.51, 0.52]  # ranks 0, .5, 1
    m2 = [90.0, 10.0, 50.0]  # ranks 1, 0, .5 (scale irrelevant)
    np.testing.assert_allclose(blend(rules, [m1, m2], [3, 1]), [0.25, 0.375, 0.875])
    with pytest.raises(KitError, match="one per input"):
        blend(rules, [m1, m2], [1])


def test_blend_ties_what_ties_on_paper():
    """0.4 * 0 + 0.6 * 2/3 and 0.4 * 1 + 0.6 * 0 differ in floats (0.39999999999999997, 0.4): the AUC must see a tie."""
    out = blend(["a"] * 4, [[0, 3, 1, 2], [2, 0, 1, 3]], [2, 3])
    assert out[0] == out[1] == 0.4
    np.testing.assert_allclose(out[2:], [1 / 3, 0.4 * 2 / 3 + 0.6])


def test_blend_submissions_and_cli(tmp_path):
    test = make_test([(i, "x", rule, "x", "x", "x", "x") for i, rule in zip([10, 11, 12, 13], "aabb")])
    test.to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame({"row_id": [13, 12, 11, 10], "rule_violation": [0.9, 0.1, 0.2, 0.3]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"row_id": [10, 11, 12, 13], "rule_violation": [0.0, 1.0, 0.4, 0.6]}).to_csv(
        run / "submission.csv", index=False
    )
    sub = blend_submissions([tmp_path / "a.csv", run], test, None)
    assert sub["row_id"].tolist() == [10, 11, 12, 13]
    np.testing.assert_allclose(sub["rule_violation"], [0.5, 0.5, 0.0, 1.0])
    out = tmp_path / "blend.csv"
    assert (
        main(
            [
                "blend",
                str(tmp_path / "a.csv"),
                str(run),
                "--test",
                str(tmp_path / "test.csv"),
                "--weights",
                "1",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    np.testing.assert_allclose(pd.read_csv(out)["rule_violation"], [0.25, 0.75, 0.0, 1.0])
    assert main(["blend", str(tmp_path / "a.csv"), "--output", str(out)]) == 2  # no --test


def test_blend_oof_reports_each_and_blend(tmp_path):
    base = pd.DataFrame({"rule": ["a"] * 4, "text": list("wxyz"), "label": [1, 1, 0, 0], "fold": 0})
    base.assign(prediction=[0.9, 0.2, 0.3, 0.1]).to_csv(tmp_path / "m1.csv", index=False)  # AUC .75
    base.assign(prediction=[0.1, 0.9, 0.2, 0.3]).sample(frac=1, random_state=0).to_csv(tmp_path / "m2.csv", index=False)
    out, scores = blend_oof([tmp_path / "m1.csv", tmp_path / "m2.csv"], None)
    assert scores[str(tmp_path / "m1.csv")] == pytest.approx(0.75)
    assert scores[str(tmp_path / "m2.csv")] == pytest.approx(0.5)
    # within-rule ranks: m1 (1, 1/3, 2/3, 0), m2 (0, 1, 1/3, 2/3) -> blend (.5, .667, .5, .333):
    # positives {.5, .667} vs negatives {.5, .333}: 3 wins + 1 tie of 4 pairs
    assert scores["blend"] == pytest.approx(0.875)
    assert out["prediction"].round(3).tolist() == [0.5, 0.667, 0.5, 0.333]


def test_blend_oof_ranks_and_scores_within_each_fold(tmp_path):
    """Fold 1's model scores everything higher: pooled, its negatives would outrank fold 0's positives."""
    base = pd.DataFrame({"rule": ["a"] * 4, "text": list("wxyz"), "label": [1, 0, 1, 0], "fold": [0, 0, 1, 1]})
    base.assign(prediction=[0.3, 0.1, 0.9, 0.7]).to_csv(tmp_path / "m1.csv", index=False)
    base.assign(prediction=[0.2, 0.1, 0.8, 0.6]).to_csv(tmp_path / "m2.csv", index=False)
    out, scores = blend_oof([tmp_path / "m1.csv", tmp_path / "m2.csv"], None)
    assert scores[str(tmp_path / "m1.csv")] == 1.0  # per fold; pooled it would read 0.75
    assert scores["blend"] == 1.0
    assert out["prediction"].tolist() == [1.0, 0.0, 1.0, 0.0]  # ranks within (fold, rule)
    base.assign(prediction=0.5, fold=[1, 1, 0, 0]).to_csv(tmp_path / "m3.csv", index=False)
    with pytest.raises(KitError, match="folds differ"):
        blend_oof([tmp_path / "m1.csv", tmp_path / "m3.csv"], None)
