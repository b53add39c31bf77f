"""Interrupted runs: `train --resume` continues a SIGKILLed run; refusals say what to do; provenance of cv runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jigsaw_kit.cli import main
from jigsaw_kit.methods.transformer.trainer import latest_checkpoint

from ..conftest import ROOT, SAMPLE

WEIGHTS = Path(__file__).parents[2] / "weights"
TRAIN = ["--config", "cpu-minilm", "--set", "save_steps=2", "--set", "logging_steps=1", "--max-steps", "8"]


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(WEIGHTS))


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    # Built once for the module; tests only read it.
    out = tmp_path_factory.mktemp("data") / "processed"
    r = subprocess.run(
        [sys.executable, str(ROOT / "build_dataset.py"), "--data-dir", str(SAMPLE), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return out


def _kit() -> str:
    exe = shutil.which("jigsaw-kit", path=str(ROOT / ".venv" / "bin")) or shutil.which("jigsaw-kit")
    assert exe, "the jigsaw-kit console script is not installed"
    return exe


def _fake_checkpoint(run: Path, step: int, complete: bool = True) -> Path:
    ckpt = run / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for f in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
        (ckpt / f).write_bytes(b"x")
    if complete:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_end(tmp_path, processed):
    run = tmp_path / "run"
    env = {**os.environ, "JIGSAW_KIT_WEIGHTS": str(WEIGHTS)}
    cmd = [_kit(), "train", "--processed", str(processed), *TRAIN, "--run-dir", str(run)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while latest_checkpoint(run) is None:  # a complete checkpoint-2 (or later)
            assert proc.poll() is None, "training ended before it saved a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 180 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_at = int(latest_checkpoint(run).name.split("-")[1])
    assert proc.returncode == -signal.SIGKILL and 2 <= killed_at < 8
    assert not (run / "model").exists()

    # Without --resume the kit refuses to throw the checkpoint away.
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr

    r = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr
    state = json.loads((run / "trainer_state.json").read_text())
    history = json.loads((run / "log_history.json").read_text())
    assert state["global_step"] == 8 and history[-1]["step"] == 8
    # one loss per step: steps up to the checkpoint come from its saved state, the rest from the resumed run
    assert sorted(h["step"] for h in history if "loss" in h) == list(range(1, 9))
    assert (run / "model" / "config.json").is_file() and (run / "model" / "model.safetensors").is_file()
    metrics = json.loads((run / "train_metrics.json").read_text())
    assert metrics["resumed_from"] == f"checkpoint-{killed_at}"
    assert not (run / "checkpoints").exists()  # deleted once the final model is safe
    print(f"resume test: killed at step {killed_at}, kill + resume took {elapsed:.1f}s")


def test_resume_without_checkpoint_says_set_save_steps(tmp_path, processed, capsys):
    code = main(["train", "--processed", str(processed), *TRAIN, "--run-dir", str(tmp_path / "run"), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "no complete Trainer checkpoint" in err and "save_steps" in err


def test_resume_skips_a_checkpoint_cut_off_mid_save(tmp_path):
    run = tmp_path / "run"
    assert latest_checkpoint(run) is None
    _fake_checkpoint(run, 2)
    _fake_checkpoint(run, 10)
    _fake_checkpoint(run, 4, complete=False)  # killed while saving: no trainer_state.json yet
    (run / "checkpoints" / "checkpoint-10" / "optimizer.pt").unlink()  # half rotated away
    assert latest_checkpoint(run).name == "checkpoint-2"


def test_resume_refuses_another_config_or_data(tmp_path, processed, capsys):
    run = tmp_path / "run"
    _fake_checkpoint(run, 2)
    (run / "config.yaml").write_text(yaml.safe_dump({"learning_rate": 1.0, "max_steps": 99}))
    code = main(["train", "--processed", str(processed), *TRAIN, "--run-dir", str(run), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "config differs" in err and "learning_rate: 1.0 -> 5e-05" in err and "max_steps: 99" not in err
    (run / "config.yaml").unlink()
    (run / "data_manifest.json").write_text(json.dumps({"hashes": {"train.csv": "other"}}))
    code = main(["train", "--processed", str(processed), *TRAIN, "--run-dir", str(run), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "processed data differs" in err and "hashes" in err


def test_resume_of_tfidf_is_refused(tmp_path, processed, capsys):
    args = ["train", "--processed", str(processed), "--config", "tfidf-lr", "--resume", "--run-dir", str(tmp_path)]
    code = main(args)
    assert code == 2 and "drop --resume" in capsys.readouterr().err


def test_cv_run_records_config_versions_and_data_hashes(tmp_path):
    out = tmp_path / "cv"
    assert main(["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--scheme", "rule-out", "--output-dir",
                 str(out)]) == 0  # fmt: skip
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == "tfidf-lr"
    assert {"torch", "transformers", "jigsaw_kit"} <= set(json.loads((out / "versions.json").read_text()))
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert set(manifest["hashes"]) == {"train.csv", "test.csv", "sample_submission.csv"}
    assert manifest["scheme"] == "rule-out"
