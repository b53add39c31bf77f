"""The plan's arithmetic against what the members really do: upsampled rows, a margin, staggered starts.

    .venv/bin/python -m pytest -q tests/test_kaggle_budget.py
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
from jigsaw_kit.kaggle import members as members_mod
from jigsaw_kit.kaggle.budget import PLAN_SHARE, RESERVE_S, workload
from jigsaw_kit.kaggle.notebook import plan_budget, run_workload

from .conftest import SAMPLE


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

    monkeypatch.setattr(members_mod, "member_command", command)
    runs = [
        kk.MemberRun(kk.Member(n, "tfidf-lr", {}, 1.0), "tfidf-lr", None, None, {}, tmp_path / n) for n in ("a", "b")
    ]
    for r in runs:
        r.run_dir.mkdir()
    members_mod.run_members(runs, Path(tmp_path), poll_s=0.2, out=lambda s: None, stagger_s=1.0, keep_going=True)
    t = sorted(float(x) for x in stamps.read_text().split())
    assert len(t) == 2 and t[1] - t[0] >= 0.9
