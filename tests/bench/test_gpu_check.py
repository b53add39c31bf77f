"""`python -m jigsaw_kit.gpu_check --smoke`: every GPU member's code path on tiny random models, on the CPU.

The full mode (base-size shapes on a GPU) is documented in the module; this runs the same code at tiny size.
"""

from __future__ import annotations

import json

import pytest

from jigsaw_kit import gpu_check


@pytest.mark.slow
def test_smoke_runs_every_member(tmp_path, no_network, capsys):
    out = tmp_path / "report.json"
    assert gpu_check.main(["--smoke", "--json", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    report = json.loads(out.read_text())
    assert report["smoke"] is True and "CPU" in report["device"]
    rows = {r["member"]: r for r in report["members"]}
    assert set(rows) == {"deberta-v3-base", "mpnet-base", "qwen-lora"}
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["precision"] == "fp32" and r["train_rows_per_s"] > 0 and r["predict_rows_per_s"] > 0
        assert any("loss finite" in c for c in r["checks"]) and any("deadline armed" in c for c in r["checks"])
        assert any("finite and varied" in c for c in r["checks"])
    assert (
        json.loads((tmp_path / "work" / "qwen-lora" / "qwen-lora" / "config.json").read_text())["model_type"] == "qwen2"
    )
    printed = capsys.readouterr().out
    assert "GPU check on CPU" in printed and "qwen-lora" in printed


@pytest.mark.slow
def test_a_member_stopped_by_its_deadline_still_predicts(tmp_path):
    out = tmp_path / "report.json"
    args = ["--smoke", "--members", "mpnet-base", "--deadline-s", "-1", "--json", str(out)]
    assert gpu_check.main(args) == 0
    (row,) = json.loads(out.read_text())["members"]
    assert row["status"] == "ok" and any("deadline stopped it at step 1 of 2" in c for c in row["checks"])


def test_full_mode_needs_a_gpu_and_known_members(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "--smoke" in capsys.readouterr().err
    assert gpu_check.main(["--smoke", "--members", "gpt-5"]) == 2


def test_full_shapes_are_the_real_models():
    shapes = {m.name: m.shape for m in gpu_check.MEMBERS}
    assert shapes["deberta-v3-base"]["vocab_size"] == 128100 and shapes["mpnet-base"]["vocab_size"] == 30527
    assert shapes["qwen-lora"]["hidden_size"] == 896 and shapes["qwen-lora"]["num_hidden_layers"] == 24
    assert {m.config for m in gpu_check.MEMBERS} == {"kaggle-t4-deberta", "kaggle-t4-mpnet", "kaggle-t4-qwen-lora"}
