"""Tests for jigsaw_kit.report: figures are real PNGs, the markdown links them, edge cases don't crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core import metrics as M
from jigsaw_kit.evaluate.report import FIGURES, console_table, write_report

RULES = [
    "No legal advice: Do not offer or request legal advice.",
    "No Advertising: Spam, referral links, unsolicited advertising, and promotional content are not allowed.",
    "Only one class here | with a pipe and $dollars$ in it",
]
WORST_TEXT = "CONFIDENT MISTAKE: buy cheap | stuff\nat example.com"


def _oof(seed: int = 0) -> pd.DataFrame:
    """3 rules x 2 folds; the third rule holds only negatives so its AUC is undefined."""
    rng = np.random.default_rng(seed)
    rows = []
    for r_i, rule in enumerate(RULES):
        for i in range(40):
            label = 0 if r_i == 2 else int(i % 2)
            pred = float(np.clip(0.5 * label + 0.25 + rng.normal(0, 0.2), 0.01, 0.98))
            fold = (i // 2) % 2  # both labels in every fold
            rows.append({"rule": rule, "text": f"comment {r_i}-{i}", "label": label, "prediction": pred, "fold": fold})
    df = pd.DataFrame(rows)
    # One unmistakably confident mistake: a true violation scored 0.001.
    df.loc[0, ["text", "label", "prediction"]] = [WORST_TEXT, 1, 0.001]
    return df


def _cv_metrics(oof: pd.DataFrame) -> dict:
    folds = [M.summarize(g["rule"], g["label"], g["prediction"]) for _, g in oof.groupby("fold")]
    keys = ["mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1"]
    return {
        "overall": M.summarize(oof["rule"], oof["label"], oof["prediction"]),
        "folds": folds,
        "mean": {k: float(np.mean([f[k] for f in folds])) for k in keys},
        "std": {k: float(np.std([f[k] for f in folds])) for k in keys},
        "scheme": "novel",
        "config": "cpu-minilm",
        "wall_time_s": 123.4,
    }


def _histories() -> list[list[dict]]:
    out = []
    for fold in range(2):
        h = [{"loss": 0.7 - 0.05 * s - 0.01 * fold, "step": 10 * (s + 1), "epoch": 0.25 * (s + 1)} for s in range(8)]
        h.insert(4, {"eval_loss": 0.55 - 0.01 * fold, "step": 40, "epoch": 1.0})
        h.append({"eval_loss": 0.45, "step": 80, "epoch": 2.0})
        h.append({"train_runtime": 12.3, "step": 80, "epoch": 2.0})
        out.append(h)
    return out


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 1024


def test_write_report_full(tmp_path: Path) -> None:
    oof = _oof()
    out = tmp_path / "nested" / "report_dir"
    path = write_report(out, oof, _cv_metrics(oof), _histories(), title="my run", top_mistakes=5)

    assert path == out / "report.md" and path.exists()
    md = path.read_text(encoding="utf-8")
    for name in FIGURES.values():
        assert _is_png(out / name), name
        assert f"]({name})" in md, name
    assert md.startswith("# my run")
    assert "novel" in md and "cpu-minilm" in md and "123.4" in md
    assert "±" in md  # mean ± std across folds
    assert "undefined" in md
    assert "| fold |" in md and "**mean**" in md and "**std**" in md

    # Mistakes table: the most confident mistake comes first, with its newline and pipe escaped.
    section = md.split("## Most confident mistakes", 1)[1]
    table_rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(table_rows) == 5
    assert "CONFIDENT MISTAKE: buy cheap \\| stuff at example.com" in table_rows[0]
    assert "0.001" in table_rows[0]
    # Every table row keeps exactly 4 cells despite pipes in rule names and texts.
    for row in table_rows:
        assert len(row.replace("\\|", "").split("|")) == 6, row


def test_cv_dict_with_headline_key_keeps_its_folds(tmp_path: Path) -> None:
    # cv.run_cv puts the headline under a top-level "mean_rule_auc" too: still a CV dict, not a single run.
    oof = _oof()
    md = write_report(tmp_path, oof, {**_cv_metrics(oof), "mean_rule_auc": 0.5}).read_text(encoding="utf-8")
    assert "| fold |" in md and "±" in md


def test_long_text_is_truncated(tmp_path: Path) -> None:
    oof = _oof()
    oof.loc[0, "text"] = "x" * 1000
    md = write_report(tmp_path, oof, _cv_metrics(oof), None).read_text(encoding="utf-8")
    assert "x" * 159 + "…" in md and "x" * 160 not in md  # 160 chars including the ellipsis


def test_no_histories_skips_loss_curves(tmp_path: Path) -> None:
    oof = _oof()
    # A stale figure from an earlier run must not survive into a report that has no losses.
    (tmp_path / FIGURES["loss"]).write_bytes(b"stale")
    for histories in (None, [], [[{"train_runtime": 1.0, "step": 0}]]):
        md = write_report(tmp_path, oof, _cv_metrics(oof), histories).read_text(encoding="utf-8")
        assert not (tmp_path / FIGURES["loss"]).exists()
        assert FIGURES["loss"] not in md
        assert "no loss-curve figure" in md
        for key in ("roc", "confusion", "hist"):
            assert _is_png(tmp_path / FIGURES[key])


def test_single_run_metrics_and_many_rules(tmp_path: Path) -> None:
    """A bare summarize() dict (single train run) and > 6 rules (pooled histogram) both work."""
    rng = np.random.default_rng(1)
    n = 7 * 30
    oof = pd.DataFrame(
        {
            "rule": [f"rule {i % 7}" for i in range(n)],
            "text": [f"t{i}" for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "prediction": rng.uniform(0, 1, n),
            "fold": 0,
        }
    )
    summary = M.summarize(oof["rule"], oof["label"], oof["prediction"])
    md = write_report(tmp_path, oof, summary).read_text(encoding="utf-8")
    assert f"**mean_rule_auc: {summary['mean_rule_auc']:.4f}**" in md
    assert "±" not in md and "| fold |" not in md
    assert _is_png(tmp_path / FIGURES["hist"])


def test_missing_column_is_a_kit_error(tmp_path: Path) -> None:
    from jigsaw_kit.core.errors import KitError

    with pytest.raises(KitError, match="prediction"):
        write_report(tmp_path, _oof().drop(columns=["prediction"]), {})


def test_console_table_cv_shape() -> None:
    oof = _oof()
    metrics = _cv_metrics(oof)
    text = console_table(metrics)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "mean", "std"]
    auc_line = next(ln for ln in lines if ln.startswith("mean_rule_auc"))
    assert f"{metrics['mean']['mean_rule_auc']:.4f}" in auc_line
    assert f"{metrics['std']['mean_rule_auc']:.4f}" in auc_line
    assert "per rule (overall):" in text
    assert "undefined" in text
    assert "No legal advice: Do not offer or reque" in text
    assert max(len(ln) for ln in lines) < 90  # rule names are shortened


def test_console_table_single_run_shape() -> None:
    oof = _oof()
    summary = M.summarize(oof["rule"], oof["label"], oof["prediction"])
    lines = console_table(summary).splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert lines[1].split() == ["mean_rule_auc", f"{summary['mean_rule_auc']:.4f}"]
    assert len(lines[5].split()) == 2  # f1 row: name + one value, no std column
    assert "per rule (overall):" in lines


def test_console_table_folds_without_mean_std() -> None:
    """Mean/std are derived from the folds when the caller didn't store them."""
    oof = _oof()
    metrics = _cv_metrics(oof)
    del metrics["mean"], metrics["std"], metrics["wall_time_s"]
    auc_line = next(ln for ln in console_table(metrics).splitlines() if ln.startswith("mean_rule_auc"))
    expected = np.mean([f["mean_rule_auc"] for f in metrics["folds"]])
    assert f"{expected:.4f}" in auc_line
