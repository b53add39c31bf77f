"""Real runs on the shipped sample: MiniLM fine-tuned for a few steps on CPU, offline."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from jigsaw_kit.cli import main

from ..conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow
FAST = ["--max-steps", "3", "--set", "logging_steps=1"]


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    # Vendored once into the repo's weights/ (the first test to need it vendors it: the auto path).
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


def _read_sub(path):
    sub = pd.read_csv(path)
    sample = pd.read_csv(SAMPLE / "sample_submission.csv")
    assert sub.columns.tolist() == ["row_id", "rule_violation"]
    assert sub["row_id"].tolist() == sample["row_id"].tolist()
    assert sub["rule_violation"].between(0, 1).all() and sub["rule_violation"].notna().all()
    return sub


def test_run_end_to_end_is_offline_and_reproducible(tmp_path, no_network, capsys):
    for name in ("a", "b"):
        code = main(
            [
                "run",
                "--data-dir",
                str(SAMPLE),
                "--config",
                "cpu-minilm",
                *FAST,
                "--output",
                str(tmp_path / f"{name}.csv"),
                "--run-dir",
                str(tmp_path / f"run_{name}"),
            ]
        )
        assert code == 0
    out = capsys.readouterr().out
    assert "labelled rows after dedup" in out and "submission:" in out
    a, b = _read_sub(tmp_path / "a.csv"), _read_sub(tmp_path / "b.csv")
    assert a["rule_violation"].nunique() > 1  # a real model, not a constant
    pd.testing.assert_frame_equal(a, b)  # same config + seed + data -> same predictions
    run = tmp_path / "run_a"
    for f in (
        "config.yaml",
        "versions.json",
        "log_history.json",
        "train_metrics.json",
        "data_manifest.json",
        "model/config.json",
        "processed/manifest.json",
    ):
        assert (run / f).is_file(), f
    history = json.loads((run / "log_history.json").read_text())
    assert any("loss" in h for h in history)
    manifest = json.loads((run / "data_manifest.json").read_text())
    assert manifest["template"] == "rule-body" and len(manifest["hashes"]) == 3


def test_stages_one_at_a_time(tmp_path, no_network):
    processed = tmp_path / "processed"
    r = subprocess.run(
        [sys.executable, str(ROOT / "build_dataset.py"), "--data-dir", str(SAMPLE), "--out", str(processed)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert {"train.parquet", "test.parquet", "manifest.json", "sample_submission.csv"} <= {
        p.name for p in processed.iterdir()
    }
    run = tmp_path / "run"
    assert main(["train", "--processed", str(processed), "--config", "cpu-minilm", *FAST, "--run-dir", str(run)]) == 0
    assert (
        main(["predict", "--processed", str(processed), "--run-dir", str(run), "--output", str(tmp_path / "s.csv")])
        == 0
    )
    _read_sub(tmp_path / "s.csv")
    # a config whose template differs from the build's is refused with the fix
    assert (
        main(
            [
                "train",
                "--processed",
                str(processed),
                "--config",
                "cpu-minilm",
                "--set",
                "template=body-rule",
                "--run-dir",
                str(tmp_path / "r2"),
            ]
        )
        == 2
    )


def test_tfidf_baseline_run(tmp_path):
    assert (
        main(
            [
                "run",
                "--data-dir",
                str(SAMPLE),
                "--config",
                "tfidf-lr",
                "--output",
                str(tmp_path / "t.csv"),
                "--run-dir",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert _read_sub(tmp_path / "t.csv")["rule_violation"].nunique() > 3


def test_missing_checkpoint_says_what_to_put_where(tmp_path, capsys):
    code = main(
        [
            "run",
            "--data-dir",
            str(SAMPLE),
            "--model",
            str(tmp_path / "nowhere"),
            "--output",
            str(tmp_path / "s.csv"),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint at" in err and "config.json" in err
    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "weights" / "all-MiniLM-L6-v2", broken)
    (broken / "tokenizer.json").unlink()
    (broken / "vocab.txt").unlink()
    code = main(
        [
            "run",
            "--data-dir",
            str(SAMPLE),
            "--model",
            str(broken),
            "--output",
            str(tmp_path / "s.csv"),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2 and "lacks tokenizer files" in capsys.readouterr().err


def test_console_entry_point_rejects_bad_data(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.csv").write_text("row_id;body\n1;x\n")
    shutil.copy(SAMPLE / "test.csv", bad / "test.csv")
    shutil.copy(SAMPLE / "sample_submission.csv", bad / "sample_submission.csv")
    exe = shutil.which("jigsaw-kit", path=str(ROOT / ".venv" / "bin")) or shutil.which("jigsaw-kit")
    assert exe, "the jigsaw-kit console script is not installed"
    r = subprocess.run(
        [exe, "build", "--data-dir", str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "error:" in r.stderr and "train.csv" in r.stderr and "Traceback" not in r.stderr
