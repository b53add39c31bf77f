"""The plan's arithmetic against what the members really do: upsampled rows, a margin, staggered starts.

    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_budget.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.config import load_config
from jigsaw_kit.data import dataset
from jigsaw_kit.data.competition import load_competition
from jigsaw_kit.data.prep import upsample_test_examples
from jigsaw_kit.kaggle import launch
from jigsaw_kit.kaggle.budget import PLAN_SHARE, RESERVE_S, workload
from jigsaw_kit.kaggle.probe import plan_budget, run_workload

from ..conftest import ROOT, SAMPLE, kaggle_tree


def test_the_workload_counts_the_rows_the_trainer_sees_after_upsampling():
    cfg = load_config("kaggle-t4", {"upsample_test_examples": 2})  # what every auto fine-tune runs
    processed = dataset.build(load_competition(SAMPLE), cfg)
    work = run_workload(cfg, processed)
    trained = upsample_test_examples(processed.train, 2)  # what the Trainer is given (trainer.fine_tune)
    assert work.training_rows == len(trained) > len(processed.train) and work.upsample == 2
    # at the hidden test's size the rows only the test file labels count twice too
    manifest = {"counts": {"training_rows": 100, "test_csv_rows": 10, "training_rows_by_source": {"test_x": 20}}}
    (_, expected), (_, worst) = kk.full_test_workloads(manifest, work, full_test_rows=1000)
    assert expected.training_rows == 80 + 2 * 2000 and worst.training_rows == 80 + 2 * 4 * 1000
    plain = workload(load_config("kaggle-t4", {"upsample_test_examples": 1}), 100, 10, test_example_rows=20)
    (_, once), _ = kk.full_test_workloads(manifest, plain, full_test_rows=1000)
    assert plain.training_rows == 100 and once.training_rows == 80 + 2000  # the plan was ~1.9x short before


def test_the_plan_keeps_a_margin_and_counts_the_fast_member():
    log = kk.StageLog(start=time.time() - 1000, out=lambda s: None)
    s = kk.NotebookSettings(budget_hours=11.0, fast_member_s=300.0)
    overhead, budget = plan_budget(s, log)
    assert overhead == pytest.approx(1000 + RESERVE_S + 300, abs=2)
    assert budget == pytest.approx(overhead + PLAN_SHARE * (11 * 3600 - overhead), abs=2) and PLAN_SHARE <= 0.8
    none = kk.NotebookSettings(budget_hours=11.0, fast_member_s=300.0, fast_member=None)
    assert plan_budget(none, log)[0] == pytest.approx(1000 + RESERVE_S, abs=2)
    # the first cell's measured TF-IDF time stands for the fast member's, plus the kit's own start
    env = {"JIGSAW_KIT_CONFIG": "tfidf-lr"}
    assert kk.NotebookSettings.from_env(env=env, safety_net_s=42.0).fast_member_s == pytest.approx(42.0 + 60.0)


def test_members_start_staggered(tmp_path, monkeypatch):
    stamps = tmp_path / "starts.txt"

    def command(run, data_dir, python=sys.executable):
        code = f"import time; open({str(stamps)!r}, 'a').write(f'{{time.time()}}\\n')"
        return [python, "-c", code]

    monkeypatch.setattr(launch, "member_command", command)
    runs = [
        kk.MemberRun(kk.Member(n, "tfidf-lr", {}, 1.0), "tfidf-lr", None, None, {}, tmp_path / n) for n in ("a", "b")
    ]
    for r in runs:
        r.run_dir.mkdir()
    launch.run_members(runs, Path(tmp_path), poll_s=0.2, out=lambda s: None, stagger_s=1.0, keep_going=True)
    t = sorted(float(x) for x in stamps.read_text().split())
    assert len(t) == 2 and t[1] - t[0] >= 0.9


def _probed(name: str, device: str | None, gib: float | None) -> kk.Contender:
    tp = kk.Throughput(100.0, 1000.0, 256, "test", None if gib is None else int(gib * 2**30))
    return kk.Contender(name, 5, device, workload(load_config("kaggle-t4"), 1000, 100), tp)


def test_members_sharing_a_gpu_are_packed_by_their_probes_peak_memory():
    from jigsaw_kit.kaggle.budget import pack_by_memory

    # two that fit one 15 GiB T4 together run at once; a third that does not waits for the last one there
    fit = [_probed("a", "0", 5), _probed("b", "0", 6), _probed("c", "0", 9), _probed("d", "1", 14)]
    assert pack_by_memory(fit) == {"c": "b"}
    # a card nvidia-smi says is bigger holds them all; unmeasured peaks (CPU, or no probe) are never held back
    assert pack_by_memory(fit, {"0": 80 * 2**30}) == {}
    assert pack_by_memory([_probed("x", "0", None), _probed("y", "0", 14), _probed("z", None, None)]) == {}


def test_a_member_that_waits_starts_when_the_one_before_it_ends(tmp_path, monkeypatch):
    stamps = tmp_path / "stamps.txt"

    def command(run, data_dir, python=sys.executable):
        code = (
            f"import time; f = open({str(stamps)!r}, 'a'); f.write(f'{run.member.name} start {{time.time()}}\\n');"
            f" time.sleep(1); f.write(f'{run.member.name} end {{time.time()}}\\n')"
        )
        return [python, "-c", code]

    monkeypatch.setattr(launch, "member_command", command)
    runs = [
        kk.MemberRun(kk.Member(n, "tfidf-lr", {}, 1.0), "tfidf-lr", "0", None, {}, tmp_path / n) for n in ("a", "b")
    ]
    runs[1].after = "a"
    lines: list[str] = []
    launch.run_members(runs, Path(tmp_path), poll_s=0.2, out=lines.append, keep_going=True)
    t = {" ".join(x.split()[:2]): float(x.split()[2]) for x in stamps.read_text().splitlines()}
    assert t["b start"] >= t["a end"] and all(r.status == "done" for r in runs)
    assert any(x.startswith("[b] GPU 0 (after a): $ ") for x in lines)


def _preview(tmp_path: Path, members: list) -> tuple[kk.NotebookSettings, object]:
    inp, working = kaggle_tree(tmp_path)
    env = {"JIGSAW_KIT_KAGGLE_INPUT": str(inp), "JIGSAW_KIT_KAGGLE_WORKING": str(working)}
    s = kk.NotebookSettings.from_env(members=members, env=env)
    return s, kk.load_data(s)[1]


def test_the_lone_fine_tune_trains_with_ddp_over_both_gpus(tmp_path):
    from ..methods.test_models import make_bert

    bert = make_bert(tmp_path / "bert")
    minilm = str(ROOT / "weights" / "all-MiniLM-L6-v2")
    both = [("kaggle-t4", {"model": str(bert)}, 1.0), ("cpu-contrastive", {"model": minilm}, 1.0)]
    s, processed = _preview(tmp_path, both)
    runs = {r.member.name: r for r in kk.plan_members(s, processed, ["0", "1"], kk.StageLog(out=lambda x: None))}
    tuned = runs["kaggle-t4"]
    assert (tuned.device, tuned.ddp, tuned.where) == ("0,1", 2, "GPUs 0,1 (DDP)")
    cmd = launch.member_command(tuned, Path("/data"))
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert launch.member_env({}, tuned.device, 2)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert runs["cpu-contrastive"].ddp == 1 and runs["tfidf-lr"].device is None
    # two fine-tunes: one GPU each, no DDP
    s, processed = _preview(tmp_path / "two", [("kaggle-t4", {"model": str(bert)}, 1.0)] * 2)
    two = kk.plan_members(s, processed, ["0", "1"], kk.StageLog(out=lambda x: None))
    assert sorted((r.device, r.ddp) for r in two if r.method == "transformer") == [("0", 1), ("1", 1)]


def test_each_member_gets_a_training_deadline_that_leaves_room_to_predict():
    run = kk.MemberRun(kk.Member("a", "kaggle-t4", {}, 1.0), "transformer", "0", None, {}, Path("/x"))
    assert launch.train_deadline(run, None) is None
    assert launch.train_deadline(run, 10_000.0) == 10_000.0 - launch.PREDICT_RESERVE_S
    run.predict_s = 1_000.0  # twice the projected prediction time when that is longer
    assert launch.train_deadline(run, 10_000.0) == 8_000.0
    env = launch.member_env({}, "0", 2, 8_000.0)
    assert env["JIGSAW_KIT_TRAIN_DEADLINE"] == "8000" and "JIGSAW_KIT_TRAIN_DEADLINE" not in launch.member_env(
        {}, "0", 2
    )
