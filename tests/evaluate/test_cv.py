"""A tiny real CV run on the sample: folds -> training -> OOF -> metrics -> report with figures."""

import json

import pandas as pd
import pytest

from jigsaw_kit.cli import main

from ..conftest import ROOT, SAMPLE


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


@pytest.mark.slow
def test_cv_minilm_writes_oof_metrics_and_report(tmp_path, no_network, capsys):
    out = tmp_path / "cv"
    code = main(
        [
            "cv",
            "--data-dir",
            str(SAMPLE),
            "--config",
            "cpu-minilm",
            "--scheme",
            "novel",
            "--folds",
            "2",
            "--max-steps",
            "2",
            "--set",
            "logging_steps=1",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    oof = pd.read_csv(out / "oof.csv")
    assert oof.columns.tolist() == ["rule", "text", "label", "prediction", "fold"]
    assert sorted(oof["fold"].unique()) == [0, 1]
    assert not oof.duplicated(["rule", "text"]).any()
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["mean_rule_auc"] <= 1 and len(metrics["folds"]) == 2
    assert set(metrics["std"]) >= {"mean_rule_auc", "pooled_auc", "log_loss", "accuracy", "f1"}
    report = (out / "report.md").read_text()
    assert "| fold |" in report and "±" in report  # per-fold table and mean ± std
    for fig in ("roc_per_rule.png", "confusion_matrix.png", "loss_curves.png", "score_hist.png"):
        assert (out / fig).stat().st_size > 1000 and fig in report
    text = capsys.readouterr().out
    assert "mean_rule_auc" in text and "cv novel" in text
    assert not (out / "fold0" / "model").exists()  # fold models are dropped unless --keep-models


def test_cv_tfidf_rule_out(tmp_path):
    out = tmp_path / "cv"
    assert (
        main(
            ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", "rule-out", "--output-dir", str(out)]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["folds"]) == 4  # one per train rule
    assert all(len(f["per_rule"]) == 1 for f in metrics["folds"])


def test_cv_lb_proxy_weighs_seen_and_unseen_as_the_leaderboard(tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", "lb-proxy", "--folds", "2"]
    assert main([*args, "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    parts = metrics["parts"]
    seen = [f["mean_rule_auc"] for f in metrics["folds"] if f["part"] == "seen"]
    unseen = [f["mean_rule_auc"] for f in metrics["folds"] if f["part"] == "unseen"]
    assert parts["seen"]["mean"] == pytest.approx(sum(seen) / len(seen))
    assert parts["unseen"]["mean"] == pytest.approx(sum(unseen) / len(unseen))
    assert metrics["mean_rule_auc"] == pytest.approx((2 * parts["seen"]["mean"] + 4 * parts["unseen"]["mean"]) / 6)
    assert len(parts["unseen"]["per_rule"]) == 4  # each of the sample's train rules in turn
    assert set(pd.read_csv(out / "oof.csv")["part"]) == {"seen", "unseen"}
    assert metrics["never_used_as_example"]["n"] > 0
    printed = capsys.readouterr().out
    assert "2 x seen" in printed and "never used as examples" in printed
    # blend --oof keys rows on (part, rule, text) and weighs the parts as the headline does
    from jigsaw_kit.evaluate.blend import blend_oof

    blended, scores = blend_oof([out, out], None)
    assert len(blended) == len(pd.read_csv(out / "oof.csv"))
    assert scores[str(out)] == pytest.approx(metrics["mean_rule_auc"]) == pytest.approx(scores["blend"])
    assert "(2 x seen" in (out / "report.md").read_text()
