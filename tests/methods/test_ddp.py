"""DDP for real on this machine: two CPU processes under torchrun (gloo), as on Kaggle's 2x T4.

    torchrun --nproc_per_node=2 -m jigsaw_kit.cli train --processed TMP/processed --config cpu-minilm \\
        --max-steps 3 --run-dir TMP/run
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from jigsaw_kit.cli import main

from ..conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow
STEPS, BATCH, WORLD = 3, 16, 2


def _torchrun() -> Path:
    exe = Path(sys.executable).parent / "torchrun"
    assert exe.is_file(), f"torchrun not found next to {sys.executable}: reinstall torch in the venv"
    return exe


def _launch(tmp: Path, *cli_args: str) -> subprocess.CompletedProcess:
    # --tee 3 prefixes every line with its rank ("[default0]:", "[default1]:"): proof that both ran.
    cmd = [str(_torchrun()), "--standalone", f"--nproc_per_node={WORLD}", "--tee", "3"]
    cmd += ["--log-dir", str(tmp / "torchrun-logs"), "-m", "jigsaw_kit.cli", *cli_args]
    env = {**os.environ, "JIGSAW_KIT_WEIGHTS": str(ROOT / "weights"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, timeout=300)


@pytest.fixture(scope="module")
def ddp_run_trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    build = subprocess.run(
        [sys.executable, str(ROOT / "build_dataset.py"), "--data-dir", str(SAMPLE), "--out", str(tmp / "processed")],
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    assert build.returncode == 0, build.stderr
    args = ["train", "--processed", str(tmp / "processed"), "--config", "cpu-minilm", "--max-steps", str(STEPS)]
    r = _launch(tmp, *args, "--run-dir", str(tmp / "run"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp, r


def test_ddp_train_runs_on_both_ranks_and_saves_one_model(ddp_run_trained):
    tmp, r = ddp_run_trained
    out = r.stdout + r.stderr
    for rank in range(WORLD):
        assert f"[default{rank}]:train: " in out, out[-3000:]
    run = tmp / "run"
    history = json.loads((run / "log_history.json").read_text())
    rows = pd.read_parquet(tmp / "processed" / "train.parquet").shape[0]
    # one process alone would have seen STEPS * BATCH rows; two DDP ranks see twice as many per step
    assert history[-1]["epoch"] == pytest.approx(STEPS * BATCH * WORLD / rows, abs=0.01)
    saved = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.safetensors"))
    assert saved == ["model/model.safetensors"]


def test_ddp_predict_shards_and_matches_one_process(ddp_run_trained):
    tmp, _ = ddp_run_trained
    processed, run = tmp / "processed", tmp / "run"
    r = _launch(tmp, "predict", "--processed", str(processed), "--run-dir", str(run), "--output", str(tmp / "ddp.csv"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rank in range(WORLD):
        assert f"rank {rank}/{WORLD}: predicting" in out, out[-3000:]
    one_args = ["predict", "--processed", str(processed), "--run-dir", str(run), "--output", str(tmp / "one.csv")]
    assert main(one_args) == 0
    ddp, one = pd.read_csv(tmp / "ddp.csv"), pd.read_csv(tmp / "one.csv")
    assert ddp["row_id"].tolist() == one["row_id"].tolist()
    assert (ddp["rule_violation"] - one["rule_violation"]).abs().max() < 1e-5


def test_ddp_run_of_a_decoder_lora(tmp_path):
    # `jigsaw-kit run` under torchrun, as a lone GPU member on Kaggle's two T4s: a yes-no LoRA on a decoder (tiny
    # random Qwen2) trains DDP, both ranks predict a shard once rank 0 has saved the model, and one submission
    # is written, equal to one process's predict from the same run dir.
    from .test_models import make_qwen2

    model = make_qwen2(tmp_path / "qwen")
    run, out = tmp_path / "run", tmp_path / "ddp.csv"
    args = ["run", "--data-dir", str(SAMPLE), "--config", "cpu-minilm", "--model", str(model), "--max-steps", "2"]
    args += ["--set", "template=yes-no-chatml", "--set", "head=yes-no", "--set", "lora_r=4", "--set", "batch_size=4"]
    r = _launch(tmp_path, *args, "--run-dir", str(run), "--output", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = r.stdout + r.stderr
    for rank in range(WORLD):
        assert f"rank {rank}/{WORLD}: predicting" in log, log[-3000:]
    assert json.loads((run / "model" / "kit_head.json").read_text())["lora"] is True
    assert json.loads((run / "train_metrics.json").read_text())["stopped_early"] is False
    assert not list(tmp_path.rglob("*.tmp"))
    one = tmp_path / "one.csv"
    assert main(["predict", "--processed", str(run / "processed"), "--run-dir", str(run), "--output", str(one)]) == 0
    ddp, ref = pd.read_csv(out), pd.read_csv(one)
    assert (ddp["rule_violation"] - ref["rule_violation"]).abs().max() < 1e-5
