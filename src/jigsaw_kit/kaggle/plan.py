"""`jigsaw-kit kaggle-plan`: a fine-tune's projected Kaggle time on this data and at the hidden test's size.

    jigsaw-kit kaggle-plan --config kaggle-t4 --data-dir ../shared/data/jigsaw-agile-community-rules

The arithmetic is budget.py's, the trainer's rows probe.run_workload's; this module only puts them together.
"""

from __future__ import annotations

from pathlib import Path

from jigsaw_kit import methods
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS
from jigsaw_kit.kaggle.budget import (
    ASSUMED_T4,
    DEFAULT_BUDGET_HOURS,
    RESERVE_S,
    Throughput,
    fit_to_budget,
    format_projection,
    full_test_workloads,
    project,
)


def kaggle_plan(
    cfg: Config,
    data_dir: str | Path | None,
    test_rows: int = HIDDEN_TEST_ROWS,
    budget_hours: float = DEFAULT_BUDGET_HOURS,
    devices: int = 1,
    train_rows_per_s: float | None = None,
    predict_rows_per_s: float | None = None,
) -> list[str]:
    """The projection's lines: this data, then the hidden test's expected and worst cases with the cuts that fit.

    Rates left None are the assumed T4's (budget.ASSUMED_T4); a config that fine-tunes nothing gets one line
    saying it needs no plan.
    """
    from jigsaw_kit import pipeline
    from jigsaw_kit.kaggle.probe import run_workload  # the trainer's rows: upsampled test examples counted

    if not methods.method_class(cfg.method).fine_tunes:
        return [
            f"config {cfg.name} (method {cfg.method}) trains no epochs: it embeds or vectorises each text once "
            "and fits regressions, minutes at most. kaggle-plan projects fine-tuning configs (e.g. kaggle-t4)."
        ]
    tp = ASSUMED_T4
    if train_rows_per_s or predict_rows_per_s:
        tp = Throughput(
            train_rows_per_s or ASSUMED_T4.train_rows_per_s,
            predict_rows_per_s or ASSUMED_T4.predict_rows_per_s,
            cfg.options.max_length,
            "given on the command line",
        )
    budget = budget_hours * 3600
    processed = pipeline.build(cfg, data_dir)
    work = run_workload(cfg, processed, devices)
    lines = [format_projection("this data", work, tp, project(work, tp, RESERVE_S), budget)]
    for label, w in full_test_workloads(processed.manifest, work, test_rows):
        lines.append(format_projection(label, w, tp, project(w, tp, RESERVE_S), budget))
        lines += [f"  BUDGET: {change}" for change in fit_to_budget(w, tp, budget, RESERVE_S).changes]
    return lines
