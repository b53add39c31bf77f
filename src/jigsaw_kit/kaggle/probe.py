"""A fine-tune's probe and plan: a few real training steps timed here, projected to this data and to the hidden
test's size, and cut to the budget (budget.py does the arithmetic). Only methods that fine-tune (Method.fine_tunes)
are probed: the others embed or vectorise each text once, with no epochs to budget.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.budget import (
    ASSUMED_T4,
    PLAN_SHARE,
    RESERVE_S,
    Plan,
    Throughput,
    Workload,
    apply_plan,
    fit_to_budget,
    format_projection,
    full_test_workloads,
    hms,
    project,
    shared,
    workload,
)
from jigsaw_kit.methods import method_class

if TYPE_CHECKING:  # annotations only: importing these at runtime would pull pandas into `jigsaw-kit --help`
    import pandas as pd

    from jigsaw_kit.core.config import Config
    from jigsaw_kit.data.dataset import Processed
    from jigsaw_kit.kaggle.settings import NotebookSettings, StageLog


def token_lengths(cfg: Config, rows: pd.DataFrame, limit: int = 4096, seed: int = 0) -> list[int]:
    """Untruncated token counts of a sample of templated rows (what a max_length cut would keep), by the tokenizer
    of the checkpoint the config loads first."""
    from jigsaw_kit.core.checkpoints import load_tokenizer, resolve_model

    sample = rows.sample(n=min(limit, len(rows)), random_state=seed) if len(rows) > limit else rows
    tok = load_tokenizer(resolve_model(method_class(cfg.method).checkpoints(cfg)[0]))
    cap = getattr(tok, "model_max_length", 512)
    cap = cap if cap and cap < 100_000 else 512
    b = sample["input_b"].tolist()
    enc = tok(sample["input_a"].tolist(), b if any(x is not None for x in b) else None, truncation=True, max_length=cap)
    return [len(x) for x in enc["input_ids"]]


def probe_throughput(cfg: Config, processed: Processed, work_dir: Path, steps: int, predict_rows: int) -> Throughput:
    """Time a few real training steps and one prediction pass on this machine.

    Training speed comes from the Trainer's own train_runtime (model loading and tokenising excluded, the
    first steps' warm-up included: errs slow). Prediction is timed as a member predicts: the model loaded
    once (not timed), then the rows, length-sorted batches and all.
    """
    import pandas as pd
    import torch

    from jigsaw_kit import methods
    from jigsaw_kit.methods.guards import check_predictions
    from jigsaw_kit.pipeline import fit

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    probe_cfg = method_class(cfg.method).trial(cfg, steps)
    result = fit(probe_cfg, processed.train, work_dir)
    runtime = next((h["train_runtime"] for h in reversed(result.log_history) if "train_runtime" in h), None)
    runtime = float(runtime) if runtime else result.train_time_s
    shape = workload(cfg, 0, 0)  # its rows per step and max_length
    train_rate = steps * shape.rows_per_step / runtime
    cols = ["rule", "text", "input_a", "input_b"]
    sample = pd.concat([processed.test[cols], processed.train[cols]], ignore_index=True).head(predict_rows)
    model = methods.load(work_dir, probe_cfg)
    t = time.perf_counter()
    preds = model.predict(sample, show_progress=False)
    predict_rate = len(sample) / (time.perf_counter() - t)
    # nan/inf (fp16 overflow) or one value for every row: the member is broken before it costs hours
    check_predictions(preds, f"the probe of {cfg.name}", allow_constant=len(sample.drop_duplicates("input_a")) < 2)
    return Throughput(
        train_rate,
        predict_rate,
        shape.max_length,
        f"measured here over {steps} training step{'s' if steps != 1 else ''}, {len(sample)} rows predicted",
        int(torch.cuda.max_memory_allocated()) if cuda else None,
    )


def measure_run(cfg: Config, processed: Processed, settings: NotebookSettings) -> tuple[Throughput, list[int] | None]:
    """The probe's throughput (alone on one GPU; ASSUMED_T4 with the probe off) and the rows' token lengths."""
    if settings.probe_steps > 0:
        # Outside /kaggle/working: the probe's model is thrown away, not worth a place in the notebook's output.
        probe_dir = Path(tempfile.mkdtemp(prefix="jigsaw-kit-probe-"))
        try:
            tp = probe_throughput(cfg, processed, probe_dir, settings.probe_steps, settings.probe_rows)
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
    else:
        tp = ASSUMED_T4
        print("probe disabled (JIGSAW_KIT_PROBE_STEPS=0): using an assumed T4 throughput")
    rows = processed.train if len(processed.train) else processed.test
    return tp, (token_lengths(cfg, rows) if len(rows) else None)


def run_workload(cfg: Config, processed: Processed, devices: int = 1) -> Workload:
    """The rows the trainer will see: after deduplication and the config's upsampling of the test examples."""
    from jigsaw_kit.data.prep import from_test_examples

    train = processed.train
    examples = int(from_test_examples(train).sum()) if len(train) else 0
    return workload(cfg, len(train), len(processed.test), devices, examples)


def plan_budget(settings: NotebookSettings, log: StageLog) -> tuple[float, float]:
    """(overhead, budget) in seconds for fit_to_budget: what is spent or reserved (the notebook so far, the fast
    member, the final load and writes), and a budget that leaves the plan PLAN_SHARE of the time left after it."""
    overhead = log.elapsed() + RESERVE_S + (settings.fast_member_s if settings.fast_member else 0.0)
    left = max(0.0, settings.budget_hours * 3600 - overhead)
    return overhead, overhead + PLAN_SHARE * left


def report_plan(
    processed: Processed,
    settings: NotebookSettings,
    work: Workload,
    tp: Throughput,
    lengths: list[int] | None,
    plan: Plan,
    overhead: float,
) -> list[tuple[str, float]]:
    """Print the projections (this data, the hidden test's size) and the plan's cuts; (label, seconds) of each."""
    budget = plan.budget_s
    here = project(work, tp, overhead, lengths)
    print(format_projection("this data", work, tp, here, budget))
    totals = [("this data", here.total_s)]
    # A smoke run's max_steps says nothing about the real run: at full size, project the config's epochs.
    full_work = dataclasses.replace(work, max_steps=-1) if settings.max_steps is not None else work
    for label, w in full_test_workloads(processed.manifest, full_work):
        full = project(w, tp, overhead, lengths)
        print(format_projection(label, w, tp, full, budget))
        totals.append((f"{w.test_rows:,} rows {'worst case' if 'worst' in label else 'expected'}", full.total_s))
        for change in fit_to_budget(w, tp, budget, overhead, lengths).changes:  # the same margin at full size
            print(f"  (at that size the budget would cut: {change})")
    for change in plan.changes:
        print(f"BUDGET: {change}")
    if plan.fits and not plan.changes:
        print(f"plan: no change needed; projected {hms(plan.projection.total_s)} of {hms(budget)}")
    return totals


def plan_run(
    cfg: Config,
    processed: Processed,
    settings: NotebookSettings,
    log: StageLog,
    share: int = 1,
    projections: list[tuple[str, float]] | None = None,
) -> tuple[Config, Plan | None]:
    """Probe, project (this data and the hidden test's size), cut to the budget; returns (cfg, plan).

    share: fine-tunes that will train at once on this GPU (the probe ran alone: each gets ~1/share of its
    speed). projections, when given, receives (label, projected total seconds) for this data and full size.
    """
    from jigsaw_kit.core.checkpoints import attached
    from jigsaw_kit.kaggle.attached import attached_for

    if not method_class(cfg.method).fine_tunes:
        print(f"method {cfg.method}: no epochs to budget (each text is embedded or vectorised once)")
        return cfg, None
    with attached(attached_for(cfg, settings)):
        tp, lengths = measure_run(cfg, processed, settings)
    tp = shared(tp, share)
    overhead, budget = plan_budget(settings, log)
    work = run_workload(cfg, processed)
    plan = fit_to_budget(work, tp, budget, overhead, lengths)
    totals = report_plan(processed, settings, work, tp, lengths, plan, overhead)
    if not plan.fits:
        raise KitError(plan.changes[-1])
    if projections is not None:
        projections.extend(totals)
    return apply_plan(cfg, plan), plan


def release_gpu() -> None:
    """Hand the probe's cached GPU memory back before the members start (torch only if already imported)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
