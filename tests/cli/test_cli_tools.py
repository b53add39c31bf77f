"""The comparison and cache commands through the CLI, and outputs that cannot be written failing before the work."""

import json
import os

import numpy as np
import pytest

from jigsaw_kit.cli import main
from jigsaw_kit.methods.embed_cache import EmbeddingCache

from ..conftest import SAMPLE


@pytest.fixture(scope="module")
def two_cv_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    base = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", "novel", "--folds", "2"]
    assert main([*base, "--output-dir", str(root / "a")]) == 0
    assert main([*base, "--set", "tfidf_c=0.05", "--output-dir", str(root / "b")]) == 0
    return root / "a", root / "b"


def test_compare_prints_the_table_and_writes_its_files(two_cv_dirs, tmp_path, capsys):
    a, b = two_cv_dirs
    assert main(["compare", str(a), str(b), "--output", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    head_a = json.loads((a / "metrics.json").read_text())["mean_rule_auc"]
    assert "Paired fold differences" in out and f"{head_a:.4f}" in out
    assert {p.name for p in (tmp_path / "cmp").iterdir()} >= {"compare.md", "compare.json", "compare.png"}


def test_compare_of_a_folder_without_cv_is_one_error_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--output", str(tmp_path / "cmp")]) == 2
    assert "error:" in capsys.readouterr().err


def test_blend_fit_through_the_cli(two_cv_dirs, tmp_path, capsys):
    a, b = two_cv_dirs
    out = tmp_path / "fit.json"
    assert main(["blend", "--oof", "--fit", str(a), str(b), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "honest" in text and "in-sample" in text
    res = json.loads(out.read_text())
    assert abs(sum(res["weights"]) - 1) < 1e-9 and min(res["weights"]) >= 0
    assert main(["blend", "--fit", str(a), str(b)]) == 2  # --fit needs --oof
    assert main(["blend", "--oof", "--fit", str(a), str(b), "--weights", "1", "2"]) == 2


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "c"))
    EmbeddingCache(tmp_path / "c", "ab" * 32, 128).put(["x", "y"], np.ones((2, 4), dtype=np.float32))
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c") in out and "2 vectors" in out
    assert main(["cache", "clear"]) == 0
    assert "cleared" in capsys.readouterr().out
    assert not list((tmp_path / "c").rglob("*.npz"))
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "0")
    assert main(["cache"]) == 0 and "off" in capsys.readouterr().out


def test_no_cache_flag_turns_the_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    args = ["build", "--data-dir", str(SAMPLE), "--out", str(tmp_path / "p"), "--config", "tfidf-lr", "--no-cache"]
    assert main(args) == 0
    assert os.environ["JIGSAW_KIT_EMBED_CACHE"] == "0"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@pytest.mark.parametrize("flag", ["--output", "--run-dir"])
def test_an_output_that_cannot_be_created_fails_before_the_work(tmp_path, capsys, flag):
    args = ["run", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--output", str(tmp_path / "s.csv")]
    args += ["--run-dir", str(tmp_path / "run")]
    i = args.index(flag) + 1
    args[i] = "/proc/x/s.csv" if flag == "--output" else "/proc/x/run"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "/proc/x" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "processed").exists()  # nothing was built


def test_kaggle_plan_projects_a_fine_tune_and_skips_a_config_that_trains_none(capsys, monkeypatch):
    from jigsaw_kit import pipeline

    def no_build(*a, **k):
        raise AssertionError("a config that fine-tunes nothing needs no data")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "build", no_build)
        assert main(["kaggle-plan", "--config", "tfidf-lr", "--data-dir", str(SAMPLE)]) == 0
    assert "trains no epochs" in capsys.readouterr().out
    args = ["kaggle-plan", "--config", "cpu-minilm", "--data-dir", str(SAMPLE), "--train-rows-per-s", "2"]
    assert main([*args, "--budget-hours", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("this data: train ") and "/ 2.0 rows/s" in lines[0]
    assert "given on the command line" in lines[0] and "/ 2,500.0 rows/s" in lines[0]  # the T4 guess for the rest
    assert lines[1].startswith("54,059 test rows, expected") and lines[1].endswith("[given on the command line]")
    assert any(line.startswith("54,059 test rows, worst case") and "OVER" in line for line in lines)
    assert any(line.startswith("  BUDGET: ") for line in lines)  # 2 rows/s cannot train 54k rows in an hour


def test_bench_refuses_a_config_that_fine_tunes_nothing(tmp_path, capsys):
    assert main(["bench", "--config", "tfidf-lr", "--data-dir", str(SAMPLE), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bench measures a fine-tune") and "tfidf-lr" in err
    assert not (tmp_path / "bench.json").exists()
