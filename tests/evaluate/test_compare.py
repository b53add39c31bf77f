"""`jigsaw-kit compare`: CV folders side by side, paired fold differences, figure and files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.compare import compare, format_markdown, load_cv, plot_compare, write_compare

from ..conftest import SAMPLE

ADS = "No Advertising: Spam, referral links, unsolicited advertising, and promotional content are not allowed."
LEGAL = "No legal advice: Do not offer or request legal advice."
LB_FOLDS = ["seen-fold0", "seen-fold1", "unseen0-fold0", "unseen0-fold1"]


def _fold(name: str, auc: float, part: str) -> dict:
    per_rule = {ADS: {"n": 20, "positives": 9, "auc": auc + 0.05}, LEGAL: {"n": 20, "positives": 11, "auc": auc - 0.05}}
    return {"fold": name, "part": part, "mean_rule_auc": auc, "per_rule": per_rule, "train_rows": 100}


def _metrics(scheme: str, names: list[str], aucs: list[float], curve: dict | None = None, config: str = "x") -> dict:
    folds = [
        _fold(n, a, n.split("-")[0].rstrip("0123456789") if scheme == "lb-proxy" else "") for n, a in zip(names, aucs)
    ]
    mean, std = float(np.nanmean(aucs)), float(np.nanstd(aucs))  # as cv aggregates: NaN folds skipped
    m = {"scheme": scheme, "config": config, "folds_k": len(names), "folds": folds, "wall_time_s": 12.5}
    m |= {"mean": {"mean_rule_auc": mean}, "std": {"mean_rule_auc": std}, "mean_rule_auc": mean}
    if scheme == "lb-proxy":
        parts = {}
        for p in ("seen", "unseen"):
            xs = [f["mean_rule_auc"] for f in folds if f["part"] == p]
            rules = {
                ADS: {"mean": statistics.fmean(xs) + 0.05, "std": 0.01},
                LEGAL: {"mean": statistics.fmean(xs) - 0.05, "std": 0.02},
            }
            parts[p] = {"mean": statistics.fmean(xs), "std": statistics.pstdev(xs), "folds": len(xs), "per_rule": rules}
        m["parts"] = parts
        m["mean_rule_auc"] = (2 * parts["seen"]["mean"] + 4 * parts["unseen"]["mean"]) / 6
    if curve is not None:
        m["learning_curve"] = curve
    return m


def _curve(aucs: list[float], slope: float) -> dict:
    points = [
        {"fraction": f, "rows_per_rule": {ADS: 50 * f}, "rows_per_rule_mean": 50 * f, "mean_rule_auc": a, "std": 0.02}
        for f, a in zip([0.125, 0.25, 0.5, 1.0], aucs)
    ]
    return {
        "fractions": [0.125, 0.25, 0.5, 1.0],
        "points": points,
        "slope_per_doubling": {"mean": slope, "std": 0.004, "parts": {}, "folds": {}},
        "extrapolation": {"x4": 0.9, "x8": 0.92, "note": "extrapolation"},
    }


def _write(d: Path, metrics: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return d


@pytest.fixture
def lb_pair(tmp_path: Path) -> tuple[Path, Path]:
    base = _write(tmp_path / "base", _metrics("lb-proxy", LB_FOLDS, [0.80, 0.70, 0.60, 0.50], config="tfidf-lr"))
    other = _write(tmp_path / "other", _metrics("lb-proxy", LB_FOLDS, [0.82, 0.70, 0.58, 0.55], config="hybrid"))
    return base, other


def _row(md: str, label: str, paired: bool = False) -> str:
    """The label's row of the inputs table, or of the paired-difference table."""
    part = md.split("## Paired")[1 if paired else 0]
    return next(line for line in part.splitlines() if line.startswith(f"| {label} |"))


def test_table_has_labels_and_headlines(lb_pair: tuple[Path, Path]) -> None:
    result = compare(list(lb_pair))
    md = format_markdown(result)
    for d in lb_pair:
        m = json.loads((d / "metrics.json").read_text())
        row = _row(md, d.name)
        assert f"{m['mean_rule_auc']:.4f} ± {m['std']['mean_rule_auc']:.4f}" in row
        assert f"{m['parts']['seen']['mean']:.4f} ± {m['parts']['seen']['std']:.4f}" in row
        assert (
            f"{m['parts']['seen']['per_rule'][ADS]['mean']:.4f} / {m['parts']['unseen']['per_rule'][ADS]['mean']:.4f}"
            in row
        )
    header = md.splitlines()[2]
    assert "| No Advertising | No legal advice |" in header  # text before ':' only
    assert result["inputs"][0]["slope_per_doubling"] is None and "n/a" in _row(md, "base")


def test_paired_differences_on_hand_made_numbers(lb_pair: tuple[Path, Path]) -> None:
    (pair,) = compare(list(lb_pair))["pairs"]
    diffs = [0.82 - 0.80, 0.70 - 0.70, 0.58 - 0.60, 0.55 - 0.50]
    assert pair["paired"] and pair["n"] == 4 and pair["unmatched"] == 0
    assert pair["mean"] == pytest.approx(statistics.fmean(diffs))
    assert pair["sd"] == pytest.approx(statistics.stdev(diffs))  # ddof = 1
    assert (pair["wins"], pair["ties"], pair["losses"]) == (2, 1, 1)
    assert pair["parts"]["seen"] == {"n": 2, "mean": pytest.approx(0.01)}
    assert pair["parts"]["unseen"] == {"n": 2, "mean": pytest.approx(0.015)}
    assert pair["headline_diff"] == pytest.approx((2 * 0.01 + 4 * 0.015) / 6)
    row = _row(format_markdown(compare(list(lb_pair))), "other", paired=True)
    assert f"{statistics.fmean(diffs):+.4f} ± {statistics.stdev(diffs):.4f}" in row and "2/1/1" in row


def test_partial_fold_match_pairs_the_common_folds(tmp_path: Path) -> None:
    base = _write(tmp_path / "a", _metrics("novel", ["fold0", "fold1", "fold2"], [0.7, 0.8, 0.9]))
    m = _metrics("novel", ["fold0", "fold1", "fold2"], [0.75, 0.7, float("nan")])
    (pair,) = compare([base, _write(tmp_path / "b", m)])["pairs"]
    assert pair["n"] == 2 and pair["unmatched"] == 2 and pair["mean"] == pytest.approx(-0.025)
    assert "without a partner" in format_markdown(compare([base, tmp_path / "b"]))


def test_mismatched_schemes_are_reported_not_paired(tmp_path: Path, lb_pair: tuple[Path, Path]) -> None:
    novel = _write(tmp_path / "novel", _metrics("novel", ["fold0", "fold1"], [0.7, 0.8]))
    result = compare([lb_pair[0], novel])
    (pair,) = result["pairs"]
    assert not pair["paired"] and "schemes differ" in pair["reason"] and "mean" not in pair
    md = format_markdown(result)
    assert "not paired" in _row(md, "novel", paired=True) and "schemes differ (lb-proxy vs novel)" in md
    json.dumps(result, allow_nan=False)  # plain JSON


def test_no_common_fold_names_reported(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", _metrics("novel", ["fold0", "fold1"], [0.7, 0.8]))
    b = _write(tmp_path / "b", _metrics("novel", ["rule0", "rule1"], [0.7, 0.8]))
    (pair,) = compare([a, b])["pairs"]
    assert not pair["paired"] and "no fold names" in pair["reason"]


def test_missing_or_invalid_folder_raises_kit_error(tmp_path: Path) -> None:
    with pytest.raises(KitError, match=r"nope.*jigsaw-kit cv .*--output-dir"):
        load_cv(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(KitError, match="bad"):
        compare([tmp_path / "bad"])
    (tmp_path / "bad" / "metrics.json").write_text('{"scheme": "novel"}', encoding="utf-8")
    with pytest.raises(KitError, match="not a `jigsaw-kit cv` metrics.json"):
        load_cv(tmp_path / "bad")


def test_dir_and_dir_cv_accepted_and_labels_disambiguated(tmp_path: Path) -> None:
    m = _metrics("novel", ["fold0", "fold1"], [0.7, 0.8])
    _write(tmp_path / "runs" / "tfidf-lr" / "cv", m)
    _write(tmp_path / "x" / "tfidf-lr", m)
    assert load_cv(tmp_path / "runs" / "tfidf-lr") == load_cv(tmp_path / "runs" / "tfidf-lr" / "cv")
    labels = [s["label"] for s in compare([tmp_path / "runs" / "tfidf-lr", tmp_path / "x" / "tfidf-lr"])["inputs"]]
    assert labels == ["runs/tfidf-lr", "x/tfidf-lr"]
    assert [s["label"] for s in compare([tmp_path / "runs" / "tfidf-lr" / "cv"])["inputs"]] == ["tfidf-lr"]


def test_learning_curves_plotted_and_slope_in_table(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", _metrics("novel", ["fold0", "fold1"], [0.7, 0.8], _curve([0.6, 0.65, 0.7, 0.75], 0.05)))
    b = _write(tmp_path / "b", _metrics("novel", ["fold0", "fold1"], [0.72, 0.8]))  # no curve: a reference line
    result = compare([a, b])
    assert result["inputs"][0]["slope_per_doubling"] == {"mean": 0.05, "std": 0.004}
    assert "+0.0500 ± 0.0040" in _row(format_markdown(result), "a")
    files = write_compare(result, tmp_path / "out")
    assert set(files) == {"md", "json", "png"} and files["png"].stat().st_size > 1000
    assert files["md"].read_text(encoding="utf-8") == format_markdown(result)
    assert json.loads(files["json"].read_text())["inputs"][0]["curve"][0]["rows_per_rule_mean"] == 6.25
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic: no temp files left


def test_png_without_curves(tmp_path: Path, lb_pair: tuple[Path, Path]) -> None:
    out = plot_compare(compare(list(lb_pair)), tmp_path / "fig" / "compare.png")
    assert out is not None and out.stat().st_size > 1000


@pytest.fixture(scope="module")
def real_cv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real CV runs on the made-up sample (novel, 2 folds: ~1.5 s each); the second in DIR/cv layout."""
    from jigsaw_kit.cli import main

    root = tmp_path_factory.mktemp("real")
    common = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", "novel", "--folds", "2"]
    assert main([*common, "--output-dir", str(root / "c4")]) == 0
    # tfidf_c=1 ranks the sample exactly as the default 4 does; 0.05 changes the fold AUCs
    assert main([*common, "--set", "tfidf_c=0.05", "--output-dir", str(root / "c005" / "cv")]) == 0
    return root / "c4", root / "c005"


def test_real_cv_folders(real_cv: tuple[Path, Path], tmp_path: Path) -> None:
    result = compare(list(real_cv))
    md = format_markdown(result)
    base, other = (load_cv(d) for d in real_cv)
    assert f"{base['mean_rule_auc']:.4f}" in _row(md, "c4") and f"{other['mean_rule_auc']:.4f}" in _row(md, "c005")
    (pair,) = result["pairs"]
    want = [o["mean_rule_auc"] - b["mean_rule_auc"] for b, o in zip(base["folds"], other["folds"])]
    assert pair["paired"] and pair["n"] == 2 and pair["mean"] == pytest.approx(statistics.fmean(want))
    assert set(write_compare(result, tmp_path)) == {"md", "json", "png"}
