import math

import numpy as np
import pytest

from jigsaw_kit.core.metrics import mean_rule_auc, per_rule_auc, pooled_auc, summarize


def test_per_rule_auc_hand_computed():
    # rule a: positives {0.9, 0.4}, negatives {0.5, 0.1}: pairs won 3 of 4 -> 0.75
    # rule b: perfectly ranked -> 1.0
    rules = ["a"] * 4 + ["b"] * 2
    labels = [1, 1, 0, 0, 1, 0]
    scores = [0.9, 0.4, 0.5, 0.1, 0.2, 0.1]
    table = per_rule_auc(rules, labels, scores).set_index("rule")
    assert table.loc["a", "auc"] == pytest.approx(0.75)
    assert table.loc["b", "auc"] == pytest.approx(1.0)
    assert mean_rule_auc(rules, labels, scores) == pytest.approx(0.875)
    # pooled ignores rules: b's positive 0.2 ranks below a's negative 0.5 -> differs from the metric
    assert pooled_auc(labels, scores) != pytest.approx(0.875)


def test_ties_count_half():
    assert mean_rule_auc(["r"] * 2, [1, 0], [0.5, 0.5]) == pytest.approx(0.5)


def test_calibration_across_rules_does_not_matter():
    rules = ["a", "a", "b", "b"]
    labels = [1, 0, 1, 0]
    assert mean_rule_auc(rules, labels, [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    assert pooled_auc(labels, [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.75)


def test_single_class_rule_is_undefined_not_a_crash():
    rules = ["a", "a", "one"]
    labels = [1, 0, 1]
    table = per_rule_auc(rules, labels, [0.7, 0.2, 0.5]).set_index("rule")
    assert math.isnan(table.loc["one", "auc"])
    assert mean_rule_auc(rules, labels, [0.7, 0.2, 0.5]) == pytest.approx(1.0)  # undefined rule left out
    s = summarize(rules, labels, [0.7, 0.2, 0.5])
    assert s["per_rule"]["one"]["auc"] is None and s["per_rule"]["a"]["auc"] == pytest.approx(1.0)


def test_all_undefined_gives_nan():
    assert math.isnan(mean_rule_auc(["a"], [1], [0.3]))


def test_summarize_threshold_metrics():
    s = summarize(["r"] * 4, np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1]))
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.5)
    assert s["n"] == 4 and np.isfinite(s["log_loss"])


def test_summarize_ranks_raw_scores_not_clipped_ones():
    """Scores beyond [0, 1] (rank sums) and probabilities a hair from 1 must keep their order."""
    labels = np.array([1, 0, 1, 0])
    s = summarize(["r"] * 4, labels, np.array([1.9, 1.5, 1.2, 0.3]))
    assert s["mean_rule_auc"] == 0.75 and s["pooled_auc"] == 0.75
    near_one = summarize(["r"] * 2, np.array([1, 0]), np.array([1 - 1e-9, 1 - 1e-8]))
    assert near_one["mean_rule_auc"] == 1.0  # clipping to 1 - 1e-7 would tie them at 0.5
