"""Learning curves in `cv` (evaluate/curve.py): nested samples, the full-data point, per-rule counts, the slope."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.cli import main
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import load_competition
from jigsaw_kit.data.folds import fold_training_rows, make_folds
from jigsaw_kit.evaluate import curve

from ..conftest import SAMPLE


def labelled(n_per_group: dict[tuple[str, int], int]) -> pd.DataFrame:
    rows = [(r, f"{r}-{y}-{i}", y) for (r, y), n in n_per_group.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["rule", "text", "label"]).sample(frac=1, random_state=0).reset_index(drop=True)


def test_samples_are_nested_stratified_and_keep_the_order():
    rows = labelled({("a", 0): 40, ("a", 1): 9, ("b", 0): 3, ("b", 1): 100})
    ranks = curve.subsample_ranks(rows, (42, 0))
    kept = {f: curve.subsample(rows, f, ranks) for f in (0.125, 0.25, 0.5, 1.0)}
    for small, big in [(0.125, 0.25), (0.25, 0.5), (0.5, 1.0)]:
        assert set(kept[small]["text"]) < set(kept[big]["text"])
    for f, sub in kept.items():
        counts = sub.groupby(["rule", "label"]).size().to_dict()
        for key, n in rows.groupby(["rule", "label"]).size().items():
            assert counts[key] == math.ceil(f * n)  # every (rule, label) keeps its share, and at least one row
        order = rows.reset_index().merge(sub, on=["rule", "text", "label"])["index"]
        assert order.is_monotonic_increasing  # original row order: the pair builder and LR see rows as before
    assert kept[1.0] is rows
    again = curve.subsample(rows, 0.25, curve.subsample_ranks(rows, (42, 0)))
    assert again.equals(kept[0.25])  # the same seed draws the same rows
    other = curve.subsample(rows, 0.25, curve.subsample_ranks(rows, (42, 1)))
    assert not other.equals(kept[0.25])  # each fold draws its own


def test_parse_fractions():
    assert curve.parse_fractions(None) == (0.125, 0.25, 0.5, 1.0)
    assert curve.parse_fractions(["1/4", "0.5"]) == (0.25, 0.5, 1.0)
    assert curve.parse_fractions(["0.5,1/8"]) == (0.125, 0.5, 1.0)
    for bad in (["0"], ["1.5"], ["half"], ["1/0"]):
        with pytest.raises(KitError, match="--fractions"):
            curve.parse_fractions(bad)


def test_slope_per_doubling_and_extrapolation():
    assert curve.slope([100, 200, 400, 800], [0.70, 0.72, 0.74, 0.76]) == pytest.approx(0.02)
    assert math.isnan(curve.slope([100], [0.7]))
    pts = []
    for f, base in [(0.5, 0.80), (1.0, 0.83)]:
        folds = [
            {"fold": "seen-fold0", "part": "seen", "train_rows": 1000 * f, "mean_rule_auc": base},
            {"fold": "unseen0-fold0", "part": "unseen", "train_rows": 1000 * f, "mean_rule_auc": base + 0.03 * f},
        ]
        pts.append({"fraction": f, "folds": folds})
    s = curve.summarize_curve(pts, 0.85, weighted=True, fractions=(0.5, 1.0))
    assert s["slope_per_doubling"]["parts"]["seen"]["mean"] == pytest.approx(0.03)
    assert s["slope_per_doubling"]["parts"]["unseen"]["mean"] == pytest.approx(0.045)
    assert s["slope_per_doubling"]["mean"] == pytest.approx((2 * 0.03 + 4 * 0.045) / 6)
    assert s["extrapolation"]["x4"] == pytest.approx(0.85 + 2 * s["slope_per_doubling"]["mean"])
    assert "EXTRAPOLATION" in s["extrapolation"]["note"]


@pytest.mark.parametrize("scheme, parts", [("novel", set()), ("lb-proxy", {"seen", "unseen"})])
def test_the_full_data_point_is_the_plain_cv_and_counts_follow_the_fractions(tmp_path, scheme, parts, capsys):
    base = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", scheme, "--folds", "2"]
    assert main([*base, "--output-dir", str(tmp_path / "plain")]) == 0
    assert main([*base, "--output-dir", str(tmp_path / "lc"), "--fractions", "1/4"]) == 0
    out = capsys.readouterr().out
    assert "slope per doubling" in out and "extrapolated 4x" in out
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    lc = json.loads((tmp_path / "lc" / "metrics.json").read_text())
    assert np.isfinite(plain["mean_rule_auc"]) and lc["mean_rule_auc"] == plain["mean_rule_auc"]
    assert [f["mean_rule_auc"] for f in lc["folds"]] == [f["mean_rule_auc"] for f in plain["folds"]]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "lc" / "oof.csv"), pd.read_csv(tmp_path / "plain" / "oof.csv"))
    c = lc["learning_curve"]
    assert c["fractions"] == [0.25, 1.0]
    assert c["points"][-1]["mean_rule_auc"] == plain["mean_rule_auc"]
    assert set(c["points"][0]["parts"]) == parts  # lb-proxy's seen and unseen; none for the other schemes
    assert set(c["slope_per_doubling"]["parts"]) == parts
    # labelled rows per rule at each fraction: ceil(f * n) per (rule, label) of the fold's own rows
    comp = load_competition(SAMPLE)
    folds = make_folds(comp.train, comp.test, scheme, 2, seed=42)
    for pt in c["points"]:
        for fold, fm in zip(folds, pt["folds"]):
            rows = fold_training_rows(fold)
            want = rows.groupby(["rule", "label"]).size().apply(lambda n, f=pt["fraction"]: math.ceil(f * n))
            assert fm["rows_per_rule"] == {r: int(n) for r, n in want.groupby(level=0).sum().items()}
    # the same held-out texts at every fraction
    oof = pd.read_csv(tmp_path / "lc" / "learning_curve_oof.csv")
    by_frac = [set(zip(g["fold"], g["text"])) for _, g in oof.groupby("fraction")]
    assert sorted(oof["fraction"].unique()) == [0.25, 1.0] and all(s == by_frac[0] for s in by_frac)
    report = (tmp_path / "lc" / "report.md").read_text()
    assert "## Learning curve" in report and "Extrapolated (not measured)" in report
    assert (tmp_path / "lc" / curve.FIGURE).stat().st_size > 1000


def _fake_run(folds: list[pd.DataFrame], auc: float) -> SimpleNamespace:
    """What cv.run_folds returns, for fold training rows `folds`, every fold scoring auc."""
    figures = {"mean_rule_auc": auc, "pooled_auc": auc, "log_loss": 0.5, "accuracy": 0.8, "f1": 0.7}
    metrics = [{**figures, "fold": f"fold{i}", "part": "", "per_rule": {"a": {"auc": auc}}, "train_rows": len(r)}
               for i, r in enumerate(folds)]  # fmt: skip
    oofs = [pd.DataFrame({"rule": ["a"], "text": [f"held{i}"], "label": [1], "prediction": [auc], "fold": [i]})
            for i in range(len(folds))]  # fmt: skip
    return SimpleNamespace(oofs=oofs, metrics=metrics, rows_per_rule=[curve.rows_per_rule(r) for r in folds],
                           wall_time_s=1.0)  # fmt: skip


def test_the_curve_runs_cv_once_per_share_through_the_hook():
    folds = [labelled({("a", 0): 16, ("a", 1): 16}), labelled({("a", 0): 8, ("a", 1): 24})]
    calls = []

    def at_share(share, hook):
        kept = [hook(i, rows) for i, rows in enumerate(folds)]
        calls.append((share, [len(k) for k in kept]))
        for i, k in enumerate(kept):  # the hook keeps the nested sample of fold i's own seed
            assert k.equals(curve.subsample(folds[i], share, curve.subsample_ranks(folds[i], (7, i))))
        return _fake_run(kept, 0.6 + share / 10)

    lc, oof = curve.learning_curve(at_share, _fake_run(folds, 0.8), (0.25, 0.5, 1.0), 7, False, 0.8)
    assert calls == [(0.25, [8, 8]), (0.5, [16, 16])]  # once per share below 1, smallest first; 1 is the plain run
    assert [p["fraction"] for p in lc["points"]] == [0.25, 0.5, 1.0]
    assert [p["mean_rule_auc"] for p in lc["points"]] == pytest.approx([0.625, 0.65, 0.8])
    assert [p["rows_per_rule"]["a"] for p in lc["points"]] == [8, 16, 32]
    assert oof["fraction"].tolist() == [0.25, 0.5, 1.0] * 2 and oof["fold"].tolist() == [0, 0, 0, 1, 1, 1]


def test_a_plain_run_into_the_same_folder_leaves_no_stale_curve(tmp_path):
    base = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--folds", "2", "--output-dir", str(tmp_path)]
    assert main([*base, "--fractions", "1/2"]) == 0
    assert (tmp_path / curve.FIGURE).is_file() and (tmp_path / "learning_curve_oof.csv").is_file()
    assert main(base) == 0
    assert not (tmp_path / curve.FIGURE).exists()
    assert not (tmp_path / "learning_curve_oof.csv").exists()
    assert "learning_curve" not in json.loads((tmp_path / "metrics.json").read_text())
    assert "## Learning curve" not in (tmp_path / "report.md").read_text()


def test_the_fold_spread_ignores_the_difference_between_rules():
    folds = [{"fold": f"unseen{r}-fold{i}", "part": "unseen", "mean_rule_auc": a} for r, a in ((0, 0.9), (1, 0.77))
             for i in range(3)]  # fmt: skip
    folds += [{"fold": f"seen-fold{i}", "part": "seen", "mean_rule_auc": 0.83 + 0.01 * (i - 1)} for i in range(3)]
    s = curve.spread(folds)
    assert s["parts"]["unseen"] == pytest.approx(0.0)  # each rule's folds agree: no split noise
    assert s["parts"]["seen"] == pytest.approx(np.std([0.82, 0.83, 0.84]))
    assert s["headline"] == pytest.approx(2 * s["parts"]["seen"] / 6)
    novel = curve.spread([{"fold": f"fold{i}", "part": "", "mean_rule_auc": x} for i, x in enumerate([0.8, 0.9])])
    assert novel["headline"] == pytest.approx(0.05) and novel["parts"] == {}
