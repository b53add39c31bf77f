"""The notebook's stages on a fake /kaggle, in-process, with real member processes: always a submission.csv.

    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_rerun.py

Kaggle scores only the hidden rerun. There a member that crashes is DROPPED and the others are blended; on the
preview the same crash fails the notebook; the wall-clock guard stops a hanging member and leaves the best
finished blend; a cut-short checkpoint fails at the start with the fix. The stages are the ones the notebook
calls (kk.load_data, plan_members, train_members, submit_members); test_kaggle_rehearsal.py runs the notebook
itself, installed from the bundle. Cheap members: tfidf-lr (seconds), stand-in commands where only the
process's fate matters, and one real fine-tune that crashes mid-training.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.blend import blend_submissions
from jigsaw_kit.kaggle import launch

from ..conftest import SAMPLE, fake_checkpoint, kaggle_tree

COMP = "jigsaw-agile-community-rules"


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    """(input, working, env): the competition mounted the newer way; nothing else attached yet."""
    inp, working = kaggle_tree(tmp_path)
    # the member processes import the kit from this checkout, whatever the test runner's cwd
    monkeypatch.setenv("PYTHONPATH", str(Path(kk.__file__).resolve().parents[2]))
    env = {"JIGSAW_KIT_KAGGLE_INPUT": str(inp), "JIGSAW_KIT_KAGGLE_WORKING": str(working), "JIGSAW_KIT_POLL_S": "0.3"}
    env["JIGSAW_KIT_STAGGER_S"] = "0"
    return inp, working, env


def _stages(
    env: dict, members, guard_s: float | None = None, runs: list | None = None
) -> tuple[kk.NotebookSettings, list[kk.MemberRun]]:
    """The notebook's cells 2-4 on the CPU; returns the settings and the runs (also put in `runs`, for after a
    raise). guard_s: the wall-clock guard fires that many seconds after the members start."""
    s = kk.NotebookSettings.from_env(members=members, env=env)
    log = kk.StageLog(out=lambda line: None)
    _, processed = kk.load_data(s)
    planned = kk.plan_members(s, processed, [], log)
    if runs is not None:
        runs.extend(planned)
    if guard_s is not None:
        log.start = time.time() + guard_s - s.guard_hours * 3600
    kk.train_members(planned, processed, s, log)
    kk.submit_members(planned, processed, s)
    return s, planned


def _stand_ins(monkeypatch, fates: dict[str, str]) -> None:
    """Replace chosen members' `jigsaw-kit run` by a stand-in: "ok:SECONDS" writes a valid submission after a
    delay, "crash" dies as CUDA out of memory does, "hang" never ends. Other members run for real."""
    real = launch.member_command

    def command(run: kk.MemberRun, data_dir: Path, python: str = sys.executable) -> list[str]:
        fate = fates.get(run.member.name)
        if fate is None:
            return real(run, data_dir, python)
        if fate == "crash":
            code = (
                "import sys; print('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB'); sys.exit(1)"
            )
        elif fate == "hang":
            code = "import time; print('training', flush=True); time.sleep(600)"
        else:
            sample, out = str(data_dir / "sample_submission.csv"), str(run.submission)
            code = (
                f"import csv, os, time, random; time.sleep({float(fate.split(':')[1])})\n"
                f"os.makedirs({str(run.run_dir)!r}, exist_ok=True)\n"
                f"r = random.Random({run.member.name!r})\n"
                f"ids = [x['row_id'] for x in csv.DictReader(open({sample!r}))]\n"
                f"w = csv.writer(open({out!r}, 'w', newline='')); w.writerow(['row_id', 'rule_violation'])\n"
                "w.writerows([i, r.random()] for i in ids)"
            )
        return [python, "-c", code]

    monkeypatch.setattr(launch, "member_command", command)


def _crashing_encoder(d: Path) -> Path:
    """A tiny BERT that passes every check at the start and dies at its first training step: its embedding table
    has 8 rows, its tokenizer ~100 ids (as a corrupt dataset or CUDA running out of memory would, mid-run)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from ..methods.test_models import TINY, make_bert

    make_bert(d)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=8, max_position_embeddings=512, **TINY)).save_pretrained(d)
    return d


def _blend_of(working: Path, names: list[str], weights: list[float]) -> dict:
    test = pd.read_csv(SAMPLE / "test.csv")
    subs = [working / "jigsaw-kit" / n / "submission.csv" for n in names]
    return blend_submissions(subs, test, weights).set_index("row_id")["rule_violation"].to_dict()


def _submitted(working: Path) -> dict:
    sub = pd.read_csv(working / "submission.csv")
    sample = pd.read_csv(SAMPLE / "sample_submission.csv")
    assert sub["row_id"].tolist() == sample["row_id"].tolist() and sub["rule_violation"].between(0, 1).all()
    return sub.set_index("row_id")["rule_violation"].to_dict()


@pytest.mark.slow
@pytest.mark.kaggle
def test_rerun_drops_a_member_that_crashes_mid_training_and_blends_the_others(fake_kaggle, monkeypatch, capsys):
    inp, working, env = fake_kaggle
    bad = _crashing_encoder(inp / "datasets" / "me" / "tiny-bert")  # the one real member process
    ckpt = fake_checkpoint(inp / "datasets" / "me" / "enc")
    _stand_ins(monkeypatch, {"tfidf-lr": "ok:0", "cpu-hybrid": "ok:0"})
    env = {**env, "KAGGLE_IS_COMPETITION_RERUN": "True", "JIGSAW_KIT_PROBE_STEPS": "0", "JIGSAW_KIT_MAX_STEPS": "2"}
    members = [
        ("tfidf-lr", {}, 1.0),
        ("cpu-hybrid", {"model": str(ckpt)}, 2.0),
        ("kaggle-t4", {"model": str(bad)}, 1.0),
    ]
    _, runs = _stages(env, members)
    out = capsys.readouterr().out
    status = {r.member.name: r.status for r in runs}
    assert status == {"tfidf-lr": "done", "cpu-hybrid": "done", "kaggle-t4": "failed"}, out
    assert "on failure: DROP the member" in out and "probe disabled" in out  # the rerun's plan, no probe
    assert "DROPPED: kaggle-t4 (kaggle-t4, CPU): failed with exit status" in out
    assert "IndexError" in out or "index out of range" in out  # the member's own log tail, in the notebook
    # the fast member ran alone first and its submission.csv was on disk before the others started
    assert out.index("[tfidf-lr] CPU: $") < out.index("before the slow members start") < out.index("[kaggle-t4] CPU: $")
    assert _submitted(working) == pytest.approx(_blend_of(working, ["tfidf-lr", "cpu-hybrid"], [1.0, 2.0]))
    assert "per-rule rank blend of tfidf-lr x 1, cpu-hybrid x 2" in out and "1 member(s) left out" in out


@pytest.mark.kaggle
def test_preview_fails_on_the_same_crash_after_the_fast_member_wrote_submission_csv(fake_kaggle, monkeypatch, capsys):
    inp, working, env = fake_kaggle
    # kaggle-t4 would take 30 s: the crash stops it first, so the blend can only be the safety net's
    _stand_ins(monkeypatch, {"tfidf-lr": "ok:0", "cpu-hybrid": "crash", "kaggle-t4": "ok:30"})
    ckpt = fake_checkpoint(inp / "datasets" / "me" / "enc")
    members = [("kaggle-t4", {"model": str(ckpt)}, 1.0), ("cpu-hybrid", {"model": str(ckpt)}, 1.0)]
    with pytest.raises(
        KitError, match=r"(?s)member cpu-hybrid \(cpu-hybrid, CPU\) failed with exit status 1.*out of memory"
    ):
        _stages({**env, "KAGGLE_KERNEL_RUN_TYPE": "Batch"}, members)
    out = capsys.readouterr().out
    assert "on failure: FAIL the notebook" in out and "PREVIEW RUN" in out and "DROPPED" not in out
    # the safety net ran first (not a member, so in no blend once a member finished) and left a valid submission
    assert (
        re.search(r"tfidf-lr +weight safety net +-> CPU", out)
        and (working / "jigsaw-kit" / "tfidf-lr" / "submission.csv").is_file()
    )
    net = pd.read_csv(working / "jigsaw-kit" / "tfidf-lr" / "submission.csv").set_index("row_id")["rule_violation"]
    assert _submitted(working) == pytest.approx(net.to_dict())  # the safety net's own, as it wrote it
    assert not (working / "jigsaw-kit" / "kaggle-t4" / "submission.csv").exists()  # stopped before it wrote


@pytest.mark.kaggle
@pytest.mark.parametrize("policy", ["drop", "fail"])
def test_the_wall_clock_guard_stops_a_hanging_member_and_the_best_finished_blend_stays(
    fake_kaggle, monkeypatch, capsys, policy
):
    inp, working, env = fake_kaggle
    ckpt = fake_checkpoint(inp / "datasets" / "me" / "enc")
    _stand_ins(monkeypatch, {"tfidf-lr": "ok:0", "cpu-hybrid": "ok:0.5", "kaggle-t4": "hang"})
    members = [
        ("tfidf-lr", {}, 1.0),
        ("cpu-hybrid", {"model": str(ckpt)}, 3.0),
        ("kaggle-t4", {"model": str(ckpt)}, 1.0),
    ]
    env = {**env, "JIGSAW_KIT_ON_FAILURE": policy}
    t0, runs = time.time(), []
    if policy == "drop":
        _stages(env, members, guard_s=3, runs=runs)
    else:
        with pytest.raises(KitError, match="wall-clock guard"):
            _stages(env, members, guard_s=3, runs=runs)
    out = capsys.readouterr().out
    assert time.time() - t0 < 60  # stopped, not waited for
    assert {r.member.name: r.status for r in runs} == {"tfidf-lr": "done", "cpu-hybrid": "done", "kaggle-t4": "dropped"}
    hung = next(r for r in runs if r.member.name == "kaggle-t4")
    assert hung.process.poll() is not None  # killed, with its process group
    if policy == "drop":
        assert "DROPPED: kaggle-t4 (kaggle-t4, CPU): stopped by the wall-clock guard" in out
    assert "submission.csv <- tfidf-lr x 1, cpu-hybrid x 3 (2 of 3 members finished" in out
    assert _submitted(working) == pytest.approx(_blend_of(working, ["tfidf-lr", "cpu-hybrid"], [1.0, 3.0]))


@pytest.mark.kaggle
def test_a_cut_short_checkpoint_fails_at_the_start_or_is_dropped_on_the_rerun(fake_kaggle, capsys):
    inp, working, env = fake_kaggle
    ckpt = fake_checkpoint(inp / "datasets" / "me" / "cut")
    with open(ckpt / "model.safetensors", "r+b") as f:
        f.truncate(30)  # the upload was cut short: the header promises more bytes than are there
    members = [("tfidf-lr", {}, 1.0), ("cpu-hybrid", {"model": str(ckpt)}, 1.0)]
    s = kk.NotebookSettings.from_env(members=members, env=env)
    _, processed = kk.load_data(s)
    with pytest.raises(KitError, match=rf"member cpu-hybrid .*{ckpt}/model.safetensors is truncated.*cut short: copy"):
        kk.plan_members(s, processed, [], kk.StageLog(out=lambda line: None))
    assert not (working / "jigsaw-kit" / "tfidf-lr").exists()  # nothing started
    rerun = kk.NotebookSettings.from_env(members=members, env={**env, "KAGGLE_IS_COMPETITION_RERUN": "1"})
    runs = kk.plan_members(rerun, processed, [], kk.StageLog(out=lambda line: None))
    assert [(r.member.name, r.status) for r in runs] == [("tfidf-lr", "planned"), ("cpu-hybrid", "dropped")]
    assert "DROPPED: cpu-hybrid (cpu-hybrid, CPU): unusable input:" in capsys.readouterr().out
    # an output folder that cannot be written fails before the data work, with the fix
    blocked = working / "blocked"
    blocked.write_text("a file where a folder should be")
    bad = kk.NotebookSettings.from_env(members=members, env={**env, "JIGSAW_KIT_KAGGLE_WORKING": str(blocked)})
    with pytest.raises(KitError, match="is a file, not a folder"):
        kk.load_data(bad)


@pytest.mark.kaggle
def test_auto_with_an_unreadable_checkpoint_and_no_minilm_fails_the_preview_and_is_dropped_on_the_rerun(
    fake_kaggle, capsys
):
    inp, working, env = fake_kaggle
    broken = inp / "datasets" / "me" / "half-uploaded"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model_type": "bert", ')  # cut short
    s = kk.NotebookSettings.from_env(members="auto", env=env)
    assert [m.name for m in s.members] == ["cpu-contrastive"] and s.unusable
    _, processed = kk.load_data(s)  # the rows need no checkpoint: the plan stage reports what is missing
    with pytest.raises(KitError, match=rf"attached checkpoint {broken}: its config.json cannot be read .*re-upload"):
        kk.plan_members(s, processed, [], kk.StageLog(out=lambda line: None))
    rerun = kk.NotebookSettings.from_env(members="auto", env={**env, "KAGGLE_IS_COMPETITION_RERUN": "1"})
    runs = kk.plan_members(rerun, processed, [], kk.StageLog(out=lambda line: None))
    out = capsys.readouterr().out
    assert f"DROPPED: the attached checkpoint {broken}" in out
    assert "DROPPED: cpu-contrastive (cpu-contrastive, CPU): unusable input: no attached model dataset" in out
    assert [(r.member.name, r.status, r.blend) for r in runs] == [
        ("tfidf-lr", "planned", False),
        ("cpu-contrastive", "dropped", True),
    ]  # the safety net alone still gives the rerun its submission


TORCH_GONE = {"torch": "ModuleNotFoundError: No module named 'torch'", "yaml": None, "sklearn": None}


@pytest.mark.parametrize("rerun", [True, False])
def test_a_member_whose_stack_cannot_import_is_dropped_on_the_rerun_and_fails_the_preview(fake_kaggle, rerun):
    _, working, env = fake_kaggle
    env = {**env, "KAGGLE_IS_COMPETITION_RERUN": "True"} if rerun else env
    s = kk.NotebookSettings.from_env(members=[("tfidf-lr", {}, 1.0), ("cpu-contrastive", {}, 1.0)], env=env)
    s = dataclasses.replace(s, broken=tuple((m, w) for m, w in TORCH_GONE.items() if w))
    _, processed = kk.load_data(s)
    log = kk.StageLog(out=lambda line: None)
    if not rerun:
        with pytest.raises(KitError, match=r"cpu-contrastive.*its stack cannot import: torch \(ModuleNotFoundError"):
            kk.plan_members(s, processed, [], log)
        return
    runs = kk.plan_members(s, processed, [], log)
    status = {r.member.name: (r.status, r.reason) for r in runs}
    assert status["tfidf-lr"][0] == "planned" and status["cpu-contrastive"][0] == "dropped"
    assert "its stack cannot import: torch" in status["cpu-contrastive"][1]
    kk.train_members(runs, processed, s, log)
    kk.submit_members(runs, processed, s)
    assert (working / "submission.csv").is_file()


def test_a_member_stopped_by_its_deadline_is_still_blended(fake_kaggle, tmp_path, monkeypatch):
    """The guard 5 min away leaves a fine-tune a training deadline already past (the guard less 15 min): it stops
    after its first step, predicts, writes, and its predictions are blended, marked as stopped early."""
    from ..methods.test_models import make_bert

    _, working, env = fake_kaggle
    bert = make_bert(tmp_path / "bert")
    env = {**env, "KAGGLE_IS_COMPETITION_RERUN": "True", "JIGSAW_KIT_PROBE_STEPS": "0"}
    members = [("kaggle-t4", {"model": str(bert)}, 1.0), ("tfidf-lr", {}, 1.0)]
    s, runs = _stages(env, members, guard_s=300)
    tuned = next(r for r in runs if r.member.name == "kaggle-t4")
    assert tuned.status == "done" and tuned.stopped_early.startswith("STOPPED EARLY by its deadline at step 1 of")
    metrics = json.loads((tuned.run_dir / "train_metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["stopped_at_step"] == 1 and metrics["planned_steps"] > 1
    assert _submitted(working) == pytest.approx(_blend_of(working, ["kaggle-t4", "tfidf-lr"], [1.0, 1.0]))


def test_a_member_whose_loss_goes_nan_is_dropped_on_the_rerun_and_fails_the_preview(fake_kaggle, tmp_path):
    """A fine-tune whose loss is nan from its first step (a learning rate of 1e30 on a tiny BERT): the trainer's
    guard stops it with the reason; the rerun drops it and blends the others, the preview fails."""
    from ..methods.test_models import make_bert

    _, working, env = fake_kaggle
    bert = make_bert(tmp_path / "bert")
    nan_lr = {"model": str(bert), "learning_rate": 1e30, "logging_steps": 1}
    members = [("kaggle-t4", nan_lr, 1.0), ("tfidf-lr", {}, 1.0)]
    rerun = {**env, "KAGGLE_IS_COMPETITION_RERUN": "True", "JIGSAW_KIT_PROBE_STEPS": "0", "JIGSAW_KIT_MAX_STEPS": "4"}
    runs: list = []
    _stages(rerun, members, runs=runs)
    nan = next(r for r in runs if r.member.name == "kaggle-t4")
    assert nan.status == "failed" and "training loss became nan" in nan.log.read_text()
    alone = pd.read_csv(working / "jigsaw-kit" / "tfidf-lr" / "submission.csv").set_index("row_id")["rule_violation"]
    assert _submitted(working) == pytest.approx(alone.to_dict())  # the one member left, as it wrote it
    with pytest.raises(KitError, match="member kaggle-t4 .*failed"):
        _stages({**env, "JIGSAW_KIT_MAX_STEPS": "4"}, members)
