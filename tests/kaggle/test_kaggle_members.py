"""The notebook's members (kaggle/members.py): settings, GPU assignment, command lines, the preview, the blend.

.venv/bin/python -m pytest -q tests/kaggle/test_kaggle_members.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core import checkpoints
from jigsaw_kit.core.checkpoints import ATTACHED_ENV, resolve_model
from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.blend import blend_submissions
from jigsaw_kit.kaggle.attached import attached_for
from jigsaw_kit.kaggle.launch import set_args
from jigsaw_kit.kaggle.members import members_from_env, preview_banner

from ..conftest import fake_checkpoint


def test_members_parse_with_defaults_unique_names_and_checked_weights():
    ms = kk.parse_members(["tfidf-lr", ("kaggle-t4", {"seed": 1}), ("kaggle-t4", {"seed": 2}, 2), ("x/my.yaml",)])
    assert [m.name for m in ms] == ["tfidf-lr", "kaggle-t4", "kaggle-t4-2", "my"]
    assert (ms[1].overrides, ms[1].weight, ms[2].weight) == ({"seed": 1}, 1.0, 2.0)
    assert [m.config for m in kk.parse_members(kk.DEFAULT_MEMBERS)] == ["kaggle-t4", "cpu-contrastive"]
    for bad, match in (
        ([], "non-empty"),
        ("kaggle-t4", "non-empty"),
        ([("kaggle-t4", {}, 0)], "weight must be a number > 0"),
        ([("kaggle-t4", {}, -1.0)], "weight"),
        ([("kaggle-t4", "epochs=2")], "overrides must be a dict"),
        ([("", {})], "MEMBERS entry"),
        ([(1, 2, 3, 4)], "MEMBERS entry"),
    ):
        with pytest.raises(KitError, match=match):
            kk.parse_members(bad)
    env = members_from_env("kaggle-t4:2, cpu-hybrid")
    assert [(m.config, m.weight) for m in env] == [("kaggle-t4", 2.0), ("cpu-hybrid", 1.0)]
    with pytest.raises(KitError, match="config\\[:weight\\]"):
        members_from_env("kaggle-t4:two")


def test_settings_choose_members_from_the_notebook_or_the_environment():
    s = kk.NotebookSettings.from_env(members=kk.DEFAULT_MEMBERS, env={})
    assert [m.config for m in s.members] == ["kaggle-t4", "cpu-contrastive"] and s.config == "kaggle-t4"
    assert not s.rerun and not s.full_on_preview and s.preview_steps == 5
    one = kk.NotebookSettings.from_env(members=kk.DEFAULT_MEMBERS, env={"JIGSAW_KIT_CONFIG": "tfidf-lr"})
    assert [m.config for m in one.members] == ["tfidf-lr"]  # the single-config path
    env = {"JIGSAW_KIT_MEMBERS": "tfidf-lr:3", "KAGGLE_IS_COMPETITION_RERUN": "True", "JIGSAW_KIT_PREVIEW_STEPS": "2"}
    s = kk.NotebookSettings.from_env(members=kk.DEFAULT_MEMBERS, env=env)
    assert [(m.config, m.weight) for m in s.members] == [("tfidf-lr", 3.0)] and s.rerun and s.preview_steps == 2
    assert kk.NotebookSettings.from_env(env={"JIGSAW_KIT_FULL_PREVIEW": "1"}).full_on_preview
    assert kk.NotebookSettings.from_env(env={"JIGSAW_KIT_FULL_PREVIEW": "0"}, full_on_preview=True).full_on_preview
    assert not kk.NotebookSettings.from_env(env={"KAGGLE_IS_COMPETITION_RERUN": "false"}).rerun


def test_preview_only_on_a_small_test_file_outside_the_rerun():
    assert kk.is_preview(10, rerun=False)
    assert not kk.is_preview(10, rerun=True)  # Kaggle scoring: always the full run
    assert not kk.is_preview(10, rerun=False, full_on_preview=True)  # a full trial run asked for
    assert not kk.is_preview(54_059, rerun=False)  # the hidden test, should the rerun flag be missing
    assert not kk.is_preview(1000, rerun=False) and kk.is_preview(999, rerun=False)
    banner = preview_banner(10, 5)
    assert "PREVIEW RUN" in banner and "5 steps" in banner and "FULL_RUN_ON_PREVIEW" in banner


def test_visible_gpus_without_touching_cuda():
    two = "GPU 0: Tesla T4 (UUID: GPU-a)\nGPU 1: Tesla T4 (UUID: GPU-b)\n"
    assert kk.visible_gpus(None, nvidia_smi=lambda: two) == ["0", "1"]
    assert kk.visible_gpus(None, nvidia_smi=lambda: None) == []  # no nvidia-smi: no GPU
    assert kk.visible_gpus("2,3", nvidia_smi=lambda: two) == ["2", "3"]  # the machine's own offer wins
    assert kk.visible_gpus("", nvidia_smi=lambda: two) == [] and kk.visible_gpus("-1") == []


def test_gpu_assignment_gives_fine_tunes_their_own_gpu_first():
    # the default on 2 T4s: the fine-tune on one, the hybrid's embedding pass on the other
    assert kk.assign_devices(["needs", "optional"], ["0", "1"]) == ["0", "1"]
    assert kk.assign_devices(["optional", "needs"], ["0", "1"]) == ["1", "0"]  # order in MEMBERS does not matter
    assert kk.assign_devices(["needs", "needs", "optional"], ["0", "1"]) == ["0", "1", "0"]  # shares at last
    assert kk.assign_devices(["needs", "needs", "needs"], ["0", "1"]) == ["0", "1", "0"]
    assert kk.assign_devices(["needs", "none"], ["0", "1"]) == ["0", None]  # TF-IDF never takes a GPU
    assert kk.assign_devices(["needs", "optional"], []) == [None, None]  # no GPU: plain CPU processes
    assert kk.assign_devices(["needs", "optional"], ["7"]) == ["7", "7"]


def _run(tmp_path: Path, name: str = "kaggle-t4", device: str | None = "1", model: Path | None = None) -> kk.MemberRun:
    m = kk.parse_members([(name, {"learning_rate": 3e-5}, 1.0)])[0]
    overrides = {**m.overrides, "max_steps": 5, "model": "ignored", "epochs": None}
    return kk.MemberRun(m, "transformer", device, model, overrides, tmp_path / "jigsaw-kit" / m.name)


def test_member_command_line_and_environment(tmp_path):
    r = _run(tmp_path, model=Path("/kaggle/input/m"))
    cmd = kk.member_command(r, Path("/kaggle/input/comp"), python="py")
    assert cmd == [
        "py", "-m", "jigsaw_kit.cli", "run", "--data-dir", "/kaggle/input/comp", "--config", "kaggle-t4",
        "--model", "/kaggle/input/m", "--run-dir", str(tmp_path / "jigsaw-kit" / "kaggle-t4"),
        "--output", str(tmp_path / "jigsaw-kit" / "kaggle-t4" / "submission.csv"),
        "--set", "learning_rate=3e-05", "--set", "max_steps=5",
    ]  # fmt: skip
    assert r.log == tmp_path / "jigsaw-kit" / "kaggle-t4.log" and r.where == "GPU 1"
    assert set_args({"model_types": ["a", "b"]}) == ["--set", "model_types=a,b"]
    env = kk.member_env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "8"}, "1", threads=2)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "8" and env["MKL_NUM_THREADS"] == "2"
    assert kk.member_env({}, None, threads=1)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU member sees no GPU


def test_the_plan_arguments_reach_the_member_config(tmp_path):
    # What the member's `jigsaw-kit run` does with the --set pairs: the same config the notebook planned.
    from jigsaw_kit.cli import _config, build_parser

    r = _run(tmp_path)
    r.overrides.update({"max_length": 192, "epochs": 1.5})
    args = build_parser().parse_args(kk.member_command(r, tmp_path, python="py")[3:])
    cfg = _config(args)
    o = cfg.options
    assert (o.max_steps, o.max_length, o.epochs, o.learning_rate) == (5, 192, 1.5, 3e-5)


def _member_submission(run: kk.MemberRun, ids: list[int], values: list[float]) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row_id": ids, "rule_violation": values}).to_csv(run.submission, index=False)


def test_blend_members_is_the_weighted_rank_blend_checked_and_in_sample_order(tmp_path):
    test = pd.DataFrame({"row_id": [3, 1, 2, 4], "rule": ["a", "a", "b", "b"]})
    sample = pd.DataFrame({"row_id": [1, 2, 3, 4], "rule_violation": 0.5})
    processed = SimpleNamespace(test=test, sample_submission=sample)
    a = kk.MemberRun(kk.Member("a", "kaggle-t4", {}, 3.0), "transformer", "0", None, {}, tmp_path / "a")
    b = kk.MemberRun(kk.Member("b", "cpu-hybrid", {}, 1.0), "hybrid", "1", None, {}, tmp_path / "b")
    _member_submission(a, [1, 2, 3, 4], [0.9, 0.2, 0.1, 0.3])
    _member_submission(b, [4, 3, 2, 1], [0.6, 0.7, 0.8, 0.1])
    out = kk.blend_members([a, b], processed, tmp_path / "submission.csv")
    got = pd.read_csv(out)
    assert got["row_id"].tolist() == [1, 2, 3, 4]
    want = blend_submissions([a.submission, b.submission], test, [3.0, 1.0]).set_index("row_id")["rule_violation"]
    assert got.set_index("row_id")["rule_violation"].to_dict() == pytest.approx(want.to_dict())
    # rule a: member a ranks 1 over 3 (weight 3), member b ranks 3 over 1 -> row 1 first
    assert got.set_index("row_id").loc[1, "rule_violation"] == pytest.approx(0.75)
    # one member: its own probabilities, not ranks
    single = kk.blend_members([a], processed, tmp_path / "one.csv")
    assert pd.read_csv(single)["rule_violation"].tolist() == [0.9, 0.2, 0.1, 0.3]
    b.submission.unlink()
    with pytest.raises(KitError, match="member submission\\(s\\) missing"):
        kk.blend_members([a, b], processed, tmp_path / "submission.csv")


def test_a_failing_member_fails_loudly_with_its_log_tail(tmp_path, monkeypatch):
    from jigsaw_kit.kaggle.launch import run_members

    monkeypatch.setenv("PYTHONPATH", str(Path(kk.__file__).resolve().parents[2]))
    bad = kk.MemberRun(kk.Member("tfidf-lr", "tfidf-lr"), "tfidf-lr", None, None, {}, tmp_path / "jk" / "tfidf-lr")
    lines: list[str] = []
    with pytest.raises(KitError, match="(?s)member tfidf-lr .*exit status 2.*error: --data-dir .*not-there"):
        run_members([bad], tmp_path / "not-there", poll_s=0.5, out=lines.append)
    assert bad.log.is_file() and "jigsaw_kit.cli run" in bad.log.read_text() and sys.executable in lines[0]


def test_base_encoder_is_found_only_by_its_own_marker(tmp_path):
    d = tmp_path / "datasets" / "me" / "jigsaw-kit-model-all-minilm-l6-v2"
    d.mkdir(parents=True)
    (d / kk.MODEL_MARKER).write_text(json.dumps({"name": "all-MiniLM-L6-v2"}))
    assert kk.find_base_encoder(tmp_path) is None  # the only attached model is not the base encoder
    e = tmp_path / "datasets" / "me" / "jigsaw-kit-model-all-mpnet-base-v2"
    e.mkdir(parents=True)
    (e / kk.MODEL_MARKER).write_text(json.dumps({"name": "all-mpnet-base-v2"}))
    assert kk.find_base_encoder(tmp_path) == e
    settings = kk.NotebookSettings.from_env(members=kk.DEFAULT_MEMBERS, env={"JIGSAW_KIT_KAGGLE_INPUT": str(tmp_path)})
    ft, embedding = (kk.member_config(m, settings, e) for m in settings.members)
    assert ft.options.model == str(e)  # the fine-tune of the default trains the attached base encoder instead
    # the embedding member keeps MiniLM (its regressions are tuned on it): its config as written, the name attached
    assert embedding.options.model == "all-MiniLM-L6-v2"
    assert attached_for(embedding, settings) == {"all-MiniLM-L6-v2": str(d)}
    plain = kk.member_config(settings.members[0], settings, None)
    assert plain.options.model == "all-MiniLM-L6-v2" and attached_for(plain, settings) == {"all-MiniLM-L6-v2": str(d)}
    own = kk.parse_members([("kaggle-t4", {"model": str(d)})])[0]
    assert kk.member_config(own, settings, e).options.model == str(d)  # an explicit model wins
    assert attached_for(kk.member_config(own, settings, e), settings) == {}  # a folder needs no lookup


def test_a_name_resolves_to_its_attached_folder_only_where_the_notebook_says(tmp_path, monkeypatch):
    # The notebook registers {name: attached folder} for its probes and hands the same map to each member process;
    # anywhere else the name means weights/<name>, and a map from an earlier notebook run must not leak.
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv(ATTACHED_ENV, raising=False)
    d = fake_checkpoint(tmp_path / "input" / "datasets" / "me" / "enc")
    with pytest.raises(KitError, match="no checkpoint at"):
        resolve_model("my-encoder")
    with checkpoints.attached({"my-encoder": d}):
        assert resolve_model("my-encoder") == d
    with pytest.raises(KitError, match="no checkpoint at"):
        resolve_model("my-encoder")  # the block is over
    run = _run(tmp_path)
    run.attached = {"my-encoder": str(d)}
    env = kk.member_env({}, None, 1, attached=run.attached)
    monkeypatch.setenv(ATTACHED_ENV, env[ATTACHED_ENV])
    assert resolve_model("my-encoder") == d  # what the member's `jigsaw-kit run` sees
    monkeypatch.setenv(ATTACHED_ENV, "not json")
    with pytest.raises(KitError, match=f"{ATTACHED_ENV} must be a JSON object"):
        resolve_model("my-encoder")


@pytest.mark.parametrize(
    "config, gpus, bf16, told, note",
    [
        ("kaggle-t4-deberta", [], False, {"precision": "auto"}, "no GPU seen, so precision auto (fp32)"),
        ("kaggle-t4-deberta", ["0"], True, {"precision": "bf16"}, "so bf16 instead of fp16"),
        ("kaggle-t4-deberta", ["0"], False, {}, ""),  # a T4: fp16 as written
        ("kaggle-t4", [], False, {}, ""),  # precision auto already picks fp32 on the CPU
        ("cpu-contrastive", [], False, {}, ""),
    ],
)
def test_the_device_s_overrides_come_from_the_method(tmp_path, config, gpus, bf16, told, note):
    from jigsaw_kit.kaggle.stages import Checked, _member_run, process_config

    m = kk.parse_members([(config, {}, 1.0)])[0]
    settings = kk.NotebookSettings(working=tmp_path, bf16=bf16)
    cfg = load_config(config)
    run = _member_run(Checked(m, cfg, {}, {cfg.options.model: str(tmp_path / "attached")}), None, gpus, 1, settings)
    assert run.overrides == told and note in run.note and bool(note) == bool(run.note)
    assert run.model_dir == tmp_path / "attached"  # --model: the attached folder of the checkpoint it loads first
    # what its process will load (precision is a fine-tune's option only)
    assert getattr(process_config(run).options, "precision", None) == told.get(
        "precision", getattr(cfg.options, "precision", None)
    )


def test_the_safety_net_stands_only_until_a_blended_member_finishes(tmp_path, capsys):
    from jigsaw_kit.kaggle.members import format_plan

    test = pd.DataFrame({"row_id": [1, 2, 3, 4], "rule": ["a", "a", "b", "b"]})
    processed = SimpleNamespace(
        test=test, sample_submission=pd.DataFrame({"row_id": [1, 2, 3, 4], "rule_violation": 0.5})
    )
    settings = kk.NotebookSettings(working=tmp_path)
    net = kk.MemberRun(kk.Member("tfidf-lr", "tfidf-lr"), "tfidf-lr", None, None, {}, tmp_path / "net", first=True,
                       blend=False, status="done")  # fmt: skip
    a = kk.MemberRun(kk.Member("a", "kaggle-t4", {}, 3.0), "transformer", "0", None, {}, tmp_path / "a")
    b = kk.MemberRun(kk.Member("b", "cpu-hybrid", {}, 1.0), "hybrid", "1", None, {}, tmp_path / "b")
    for run, values in ((net, [0.1, 0.2, 0.3, 0.4]), (a, [0.9, 0.2, 0.1, 0.3]), (b, [0.6, 0.7, 0.8, 0.1])):
        _member_submission(run, [1, 2, 3, 4], values)
    assert kk.blend_finished([net, a, b], processed, settings) == [net]  # nothing else finished: the net's own
    assert pd.read_csv(settings.submission)["rule_violation"].tolist() == [0.1, 0.2, 0.3, 0.4]
    a.status = "done"
    assert kk.blend_finished([net, a, b], processed, settings) == [a]  # the net leaves the blend
    assert pd.read_csv(settings.submission)["rule_violation"].tolist() == [0.9, 0.2, 0.1, 0.3]
    b.status, b.reason = "failed", "failed with exit status 1 after 9 s"
    assert kk.blend_finished([net, a, b], processed, settings) == [a]  # a failed member's file is never read
    assert "submission.csv <- a x 3 (2 of 3 members finished" in capsys.readouterr().out
    plan = format_plan([net, a, b], ["0", "1"], evidence=lambda key: f"about {key}")
    assert "members (2, 1 dropped)" in plan and "weight safety net" in plan and "weight 3 (100%)" in plan
    assert "evidence: about kaggle-t4" in plan and plan.endswith(
        "DROPPED: b (cpu-hybrid, GPU 1): failed with exit status 1 after 9 s"
    )


def test_on_the_rerun_a_failing_member_is_dropped_and_the_others_go_on(tmp_path, monkeypatch):
    from jigsaw_kit.kaggle import launch

    ok = kk.MemberRun(kk.Member("ok", "tfidf-lr"), "tfidf-lr", None, None, {}, tmp_path / "jk" / "ok")
    bad = kk.MemberRun(kk.Member("bad", "tfidf-lr"), "tfidf-lr", None, None, {}, tmp_path / "jk" / "bad")
    code = {"ok": "import time; time.sleep(0.5)", "bad": "import sys; print('CUDA out of memory'); sys.exit(3)"}
    monkeypatch.setattr(launch, "member_command", lambda r, d: [sys.executable, "-c", code[r.member.name]])
    lines: list[str] = []
    finished: list[str] = []
    launch.run_members([ok, bad], tmp_path, poll_s=0.2, out=lines.append, keep_going=True,
                            on_done=lambda r: finished.append(r.member.name))  # fmt: skip
    assert (ok.status, bad.status, finished) == ("done", "failed", ["ok"])
    dropped = next(x for x in lines if x.startswith("DROPPED: bad"))
    assert "failed with exit status 3" in dropped and "CUDA out of memory" in dropped  # with its log tail
