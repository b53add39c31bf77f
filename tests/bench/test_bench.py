"""The bench: synthetic test set, padding arithmetic, projection, and one tiny real run on the sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from jigsaw_kit import bench
from jigsaw_kit.cli import main
from jigsaw_kit.kaggle import budget

from ..conftest import ROOT, SAMPLE


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rule": ["r1", "r1", "r2", "r2"],
            "text": ["a", "b", "c", "a"],
            "label": [0, 1, 0, 1],
            "subreddit": ["s"] * 4,
        }
    )


def test_synthetic_test_draws_pairs_from_the_processed_rows():
    t = bench.synthetic_test(_rows(), 500, "rule-body", seed=1)
    assert len(t) == 500 and t["row_id"].tolist() == list(range(500))
    assert set(t["rule"]) == {"r1", "r2"} and set(t["text"]) == {"a", "b", "c"}
    assert (t["input_a"] == t["rule"]).all() and (t["input_b"] == t["text"]).all()
    # independent draws: rule/text pairs that never occur in the rows appear too
    assert ("r1", "c") in set(zip(t["rule"], t["text"]))
    pd.testing.assert_frame_equal(t, bench.synthetic_test(_rows(), 500, "rule-body", seed=1))


def test_kit_epoch_padding_efficiency():
    assert bench.kit_epoch_padding_efficiency([7] * 100, 16, seed=0) == 1.0
    lengths = np.random.default_rng(0).integers(20, 200, size=2000).tolist()
    random_order = np.mean(lengths) / np.mean([max(lengths[i : i + 16]) for i in range(0, 2000, 16)])
    grouped = bench.kit_epoch_padding_efficiency(lengths, 16, seed=0)
    assert random_order < grouped <= 1.0 and grouped > 0.9


def test_projection_shows_its_arithmetic():
    p = bench.project(train_rows=1000, epochs=2, train_rows_per_s=10, infer_rows_per_s=100, speedup=4, test_rows=5400)
    assert p["train_s_here"] == 200 and p["infer_s_here"] == 54
    assert p["projected_hours_here"] == pytest.approx(254 / 3600)
    assert p["projected_kaggle_hours"] == pytest.approx(254 / 3600 / 4)
    assert "1000 rows x 2 epochs / 10.00 rows/s = 200 s" in p["projection_arithmetic"]
    assert "ASSUMED" in p["projection_arithmetic"]
    # one time model: the bench's hours are kaggle/budget's projection of the same work at the same rates
    work = budget.Workload(training_rows=1000, test_rows=5400, epochs=2, max_length=256, rows_per_step=8)
    seconds = budget.project(work, budget.Throughput(10, 100, 256, "")).total_s
    assert seconds == pytest.approx(p["projected_hours_here"] * 3600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    code = main(["bench", "--data-dir", str(SAMPLE), "--device", "cuda", "--output-dir", str(tmp_path)])
    assert code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_runs_on_the_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    args = ["bench", "--data-dir", str(SAMPLE), "--model", "all-MiniLM-L6-v2", "--output-dir", str(tmp_path)]
    args += ["--set", "batch_size=4", "--train-steps", "2", "--naive-steps", "2"]
    args += ["--test-rows", "24", "--naive-test-rows", "8", "--rehearsal-rows", "300"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train rows/s" in out and "ASSUMED" in out and "projected Kaggle time" in out
    r = json.loads((tmp_path / "bench.json").read_text())
    for key in (
        "train_rows_per_s_kit",
        "train_rows_per_s_naive",
        "train_tokens_per_s_kit",
        "padding_efficiency_kit",
        "padding_efficiency_naive",
        "infer_rows_per_s_kit",
        "infer_rows_per_s_naive",
        "peak_rss_mb",
        "projected_kaggle_hours",
        "projection_arithmetic",
    ):
        assert key in r, key
    assert "peak_gpu_mb" not in r  # CPU run
    assert 0 < r["padding_efficiency_naive"] < r["padding_efficiency_kit"] <= 1
    assert r["infer_kit"]["rows"] == 24 and r["infer_naive"]["rows"] == 8
    # padding and order do not change the model's output
    assert r["infer_max_abs_diff_kit_vs_naive"] < 1e-4
