"""Kaggle's 12 h limit: project a fine-tune's time, cut it to fit, drop the weakest when several crowd a GPU. Pure.

    jigsaw-kit kaggle-plan --config kaggle-t4 --test-rows 54059 --data-dir ../shared/data/jigsaw-agile-community-rules

Times in seconds, throughputs in rows per second (the notebook's probe figures, or the T4 guesses here).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS

if TYPE_CHECKING:  # annotations only: importing these at runtime would pull pandas into `jigsaw-kit --help`
    from jigsaw_kit.core.config import Config


EXAMPLES_PER_TEST_ROW = 4  # 2 positive + 2 negative: the worst case adds all of them as new training rows
DEFAULT_BUDGET_HOURS = 11.0  # of Kaggle's 12 h: an hour for install, image start and estimate error
RESERVE_S = 600.0  # final model load + tokenisation + saving + writing the submission, on top of the stages
# The plan fills at most this share of the time left: the probe ran alone for seconds on a cool GPU with every core,
# the members share 4 vCPUs among 3-4 processes for hours (tokenising, collating, logging), and a T4 clocks down warm.
PLAN_SHARE = 0.8


@dataclass(frozen=True)
class Throughput:
    train_rows_per_s: float  # training rows per second (forward + backward) at max_length
    predict_rows_per_s: float
    max_length: int
    source: str
    peak_gpu_bytes: int | None = None  # the probe's peak GPU memory (torch's allocator); None on the CPU


# A guess for when nothing was measured (--probe-steps 0, kaggle-plan without rates): MiniLM-L6 (~11M
# non-embedding params) fp16 on one T4, ~100 tokens a row after length grouping. Small models are
# kernel-launch bound, so this is far below the T4's FLOPs limit. Replace it with the probe's figures.
ASSUMED_T4 = Throughput(600.0, 2500.0, 256, "assumed (not measured): all-MiniLM-L6-v2, fp16, one T4")


@dataclass(frozen=True)
class Workload:
    training_rows: int
    test_rows: int
    epochs: float
    max_length: int
    rows_per_step: int  # batch_size x grad_accum x devices
    max_steps: int = -1  # > 0 overrides epochs, as in the Trainer
    upsample: int = 1  # the test file's example rows count this many times (training_rows already includes it)


@dataclass(frozen=True)
class Projection:
    train_s: float
    predict_s: float
    overhead_s: float
    row_passes: float
    cost: float  # per-row cost relative to the max_length the throughput was measured at

    @property
    def total_s(self) -> float:
        return self.train_s + self.predict_s + self.overhead_s


@dataclass(frozen=True)
class Plan:
    epochs: float
    max_length: int
    max_steps: int
    projection: Projection
    budget_s: float
    changes: tuple[str, ...] = ()
    fits: bool = True


def length_cost_ratio(lengths: Sequence[int] | None, new_len: int, measured_len: int) -> float:
    """Cost per row at new_len relative to measured_len.

    With token lengths (untruncated) the cost is taken as proportional to the tokens kept, which is what
    length-grouped batches pay; attention's quadratic term is small at these lengths. Without lengths it
    falls back to proportional to max_length, which overstates what a cut saves on short texts, so
    `fit_to_budget` only cuts max_length when lengths are given.
    """
    if new_len == measured_len:
        return 1.0
    if not lengths:
        return new_len / measured_len
    kept_new = sum(min(n, new_len) for n in lengths)
    kept_old = sum(min(n, measured_len) for n in lengths)
    return kept_new / kept_old if kept_old else 1.0


def project(
    work: Workload, tp: Throughput, overhead_s: float = 0.0, lengths: Sequence[int] | None = None
) -> Projection:
    cost = length_cost_ratio(lengths, work.max_length, tp.max_length)
    passes = work.max_steps * work.rows_per_step if work.max_steps > 0 else work.training_rows * work.epochs
    return Projection(
        train_s=passes * cost / tp.train_rows_per_s,
        predict_s=work.test_rows * cost / tp.predict_rows_per_s,
        overhead_s=overhead_s,
        row_passes=passes,
        cost=cost,
    )


def _floor1(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10


def fit_to_budget(
    work: Workload,
    tp: Throughput,
    budget_s: float,
    overhead_s: float = 0.0,
    lengths: Sequence[int] | None = None,
    min_epochs: float = 1.0,
    min_max_length: int = 128,
) -> Plan:
    """Epochs, max_length and max_steps that fit the budget, cutting in that order, and why.

    1. fewer epochs (to 0.1), not below min_epochs; 2. with token lengths known, a shorter max_length
    (multiples of 32, not below min_max_length) at min_epochs; 3. a max_steps cap: train on what fits.
    Prediction is never cut: if it alone does not fit, the plan says so (fits=False). One function, not three:
    each step starts from where the one before gave up, with the same projection and room.
    """

    def plan(epochs: float, length: int, steps: int, changes: list[str], fits: bool = True) -> Plan:
        w = dataclasses.replace(work, epochs=epochs, max_length=length, max_steps=steps)
        return Plan(epochs, length, steps, project(w, tp, overhead_s, lengths), budget_s, tuple(changes), fits)

    first = project(work, tp, overhead_s, lengths)
    if first.total_s <= budget_s:
        return plan(work.epochs, work.max_length, work.max_steps, [])
    over = f"projected {hms(first.total_s)} > budget {hms(budget_s)}"

    def train_room(length: int) -> tuple[float, float]:
        """(seconds left for training, seconds per training row pass) at this max_length."""
        cost = length_cost_ratio(lengths, length, tp.max_length)
        return budget_s - overhead_s - work.test_rows * cost / tp.predict_rows_per_s, cost / tp.train_rows_per_s

    room, per_pass = train_room(work.max_length)
    if work.max_steps <= 0:
        epochs_fit = room / per_pass / max(work.training_rows, 1) if room > 0 else 0.0
        if epochs_fit >= min_epochs:
            e = min(work.epochs, max(min_epochs, _floor1(epochs_fit)))
            return plan(e, work.max_length, -1, [f"epochs {work.epochs:g} -> {e:g}: {over}"])
        if lengths:
            e0 = min(work.epochs, min_epochs)
            cands = list(range(((work.max_length - 1) // 32) * 32, min_max_length - 1, -32))
            if min_max_length < work.max_length and min_max_length not in cands:
                cands.append(min_max_length)
            for length in cands:
                room_l, per_pass_l = train_room(length)
                epochs_l = room_l / per_pass_l / max(work.training_rows, 1) if room_l > 0 else 0.0
                if epochs_l >= e0:
                    e = min(work.epochs, max(e0, _floor1(epochs_l)))
                    return plan(
                        e,
                        length,
                        -1,
                        [f"epochs {work.epochs:g} -> {e:g}, max_length {work.max_length} -> {length}: {over}"],
                    )
    # Last resort: cap the steps, at the shortest length tried when lengths allowed trying any.
    length = min_max_length if lengths and work.max_steps <= 0 and min_max_length < work.max_length else work.max_length
    room, per_pass = train_room(length)
    steps = int(room / per_pass // max(work.rows_per_step, 1)) if room > 0 else 0
    if work.max_steps > 0:
        steps = min(steps, work.max_steps)
    if steps >= 1:
        what = f"max_length {work.max_length} -> {length}, " if length != work.max_length else ""
        return plan(work.epochs, length, steps, [f"{what}training stops after {steps} steps: {over}"])
    return plan(
        work.epochs,
        length,
        work.max_steps,
        [f"prediction alone does not fit: {over}. Use a smaller model, a lower max_length or config tfidf-lr."],
        fits=False,
    )


@dataclass(frozen=True)
class Contender:
    """A fine-tune competing for the budget: its workload, its probe's speed alone on one GPU, its evidence."""

    name: str
    rank: int  # evidence.py's evidence_rank: lower = stronger; the weakest goes first
    device: str | None  # GPU id; None: the CPU (not shared out)
    work: Workload
    tp: Throughput
    lengths: tuple[int, ...] | None = None


def shared(tp: Throughput, k: int) -> Throughput:
    """The probe's speed when k fine-tunes train at once on its GPU (each gets ~1/k)."""
    if k <= 1:
        return tp
    return dataclasses.replace(
        tp,
        train_rows_per_s=tp.train_rows_per_s / k,
        predict_rows_per_s=tp.predict_rows_per_s / k,
        source=f"{tp.source}; / {k}: {k} fine-tunes share this GPU",
    )


DDP_EFFICIENCY = 0.85  # assumed, not measured: two T4s in DDP train at ~1.7x one (gradient all-reduce over PCIe)


def ddp_speed(tp: Throughput, k: int) -> Throughput:
    """The probe's one-GPU speed for a member that trains with DDP over k GPUs and shards its prediction."""
    if k <= 1:
        return tp
    f = k * DDP_EFFICIENCY
    return dataclasses.replace(
        tp,
        train_rows_per_s=tp.train_rows_per_s * f,
        predict_rows_per_s=tp.predict_rows_per_s * f,
        source=f"{tp.source}; x {f:.2f}: DDP over {k} GPUs at an assumed {DDP_EFFICIENCY:.0%} each",
    )


def gpu_shares(contenders: Sequence[Contender]) -> Counter:
    return Counter(c.device for c in contenders if c.device is not None)


def choose_within_budget(
    contenders: Sequence[Contender], budget_s: float, overhead_s: float = 0.0, min_epochs: float = 1.0
) -> tuple[dict[str, Plan], list[tuple[str, str]]]:
    """(plan per kept fine-tune, [(dropped name, why)]): the cuts fit_to_budget makes, and drops, weakest first.

    Fine-tunes sharing a GPU are projected at 1/k of their probe's speed. While a shared GPU holds a member whose
    plan does not fit, or must cap its steps below min_epochs of training (too deep a cut to be worth the
    GPU), the weakest-evidence fine-tune on that GPU is dropped and the others planned again at the speed it
    frees. A member alone on its GPU keeps a step cap (it trains on what fits) and is dropped only when
    nothing fits.
    """
    kept = list(contenders)
    dropped: list[tuple[str, str]] = []
    while True:
        shares = gpu_shares(kept)
        plans: dict[str, Plan] = {}
        trouble: list[tuple[Contender, str]] = []
        for c in kept:
            k = shares[c.device] if c.device is not None else 1
            p = fit_to_budget(c.work, shared(c.tp, k), budget_s, overhead_s, c.lengths, min_epochs)
            plans[c.name] = p
            if not p.fits:
                trouble.append((c, f"{c.name} does not fit even cut ({p.changes[-1]})"))
            elif k > 1 and p.max_steps > 0 and c.work.max_steps <= 0:
                what = f"{c.name} would train under {min_epochs:g} epoch with {k} fine-tunes on GPU {c.device}"
                trouble.append((c, what))
        if not trouble:
            return plans, dropped
        c0, what = trouble[0]
        group = [c for c in kept if c.device is not None and c.device == c0.device] or [c0]
        victim = max(group, key=lambda c: (c.rank, kept.index(c)))  # weakest evidence; the later one on a tie
        weakest = f"{victim.name} has the weakest evidence there (rank {victim.rank})"
        why = f"over the budget of {hms(budget_s)}: {what}; {weakest}"
        dropped.append((victim.name, why))
        kept.remove(victim)


T4_BYTES = 15 * 2**30  # a T4's 16 GB less the CUDA context and the allocator's slack: when nvidia-smi cannot say
PACK_SHARE = 0.9  # members sharing a card run at once only while their probes' peaks sum under this share of it


def pack_by_memory(
    contenders: Sequence[Contender], card_bytes: Mapping[str, int] | None = None
) -> dict[str, str]:
    """{member: the member it waits for} so that fine-tunes sharing a GPU fit its memory: in order, each joins the
    members already running on its card while their probes' peak memory sums under PACK_SHARE of the card, else it
    starts when the last one there ends (one after another). Members without a measured peak run at once."""
    after: dict[str, str] = {}
    running: dict[str, list[Contender]] = {}
    for c in contenders:
        if c.device is None or c.tp.peak_gpu_bytes is None:
            continue
        card = (card_bytes or {}).get(c.device, T4_BYTES)
        here = running.setdefault(c.device, [])
        if here and sum(x.tp.peak_gpu_bytes or 0 for x in here) + c.tp.peak_gpu_bytes > PACK_SHARE * card:
            after[c.name] = here[-1].name
            running[c.device] = [c]
        else:
            here.append(c)
    return after


def hms(seconds: float) -> str:
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def format_projection(label: str, work: Workload, tp: Throughput, p: Projection, budget_s: float) -> str:
    """The arithmetic spelled out, so a reader can check it by hand."""
    if work.max_steps > 0:
        passes = f"{work.max_steps} steps x {work.rows_per_step} rows"
    else:
        passes = f"{work.training_rows:,} rows x {work.epochs:g} epochs"
    cost = f" x {p.cost:.2f} (max_length {work.max_length} vs {tp.max_length})" if p.cost != 1.0 else ""
    verdict = "fits" if p.total_s <= budget_s else "OVER"
    return (
        f"{label}: train {passes}{cost} / {tp.train_rows_per_s:,.1f} rows/s = {hms(p.train_s)}; "
        f"predict {work.test_rows:,} rows{cost} / {tp.predict_rows_per_s:,.1f} rows/s = {hms(p.predict_s)}; "
        f"+ other {hms(p.overhead_s)} = {hms(p.total_s)} of budget {hms(budget_s)} -> {verdict} "
        f"[{tp.source}]"
    )


def training_row_counts(manifest: Mapping[str, Any]) -> tuple[int, int, int]:
    """(labelled rows from train.csv, labelled rows only the test file gave, test rows) from a manifest."""
    c = manifest["counts"]
    by_source = c.get("training_rows_by_source", {})
    test_only = sum(n for s, n in by_source.items() if all(part.startswith("test_") for part in s.split("+")))
    return int(c["training_rows"]) - test_only, test_only, int(c["test_csv_rows"])


def full_test_workloads(
    manifest: Mapping[str, Any], work: Workload, full_test_rows: int = HIDDEN_TEST_ROWS
) -> list[tuple[str, Workload]]:
    """The same run at the hidden test's size: expected (this data's rate of new rows per test row) and worst case.
    The rows only the test file labels count work.upsample times, as the trainer repeats them."""
    from_train, test_only, test_rows = training_row_counts(manifest)
    per_row = test_only / test_rows if test_rows else EXAMPLES_PER_TEST_ROW
    expected = from_train + work.upsample * round(per_row * full_test_rows)
    worst = from_train + work.upsample * EXAMPLES_PER_TEST_ROW * full_test_rows
    times = f", each x{work.upsample}" if work.upsample > 1 else ""
    return [
        (
            f"{full_test_rows:,} test rows, expected ({per_row:.2f} new labelled rows per test row as here{times})",
            dataclasses.replace(work, training_rows=expected, test_rows=full_test_rows),
        ),
        (
            f"{full_test_rows:,} test rows, worst case (all {EXAMPLES_PER_TEST_ROW} examples new{times})",
            dataclasses.replace(work, training_rows=worst, test_rows=full_test_rows),
        ),
    ]


def workload(
    cfg: Config, training_rows: int, test_rows: int, devices: int = 1, test_example_rows: int = 0
) -> Workload:
    """What the trainer sees: training_rows deduplicated, of which test_example_rows (labelled only by the test
    file's examples) are repeated cfg.upsample_test_examples times in all, as data/prep.upsample_test_examples does."""
    o = cfg.options
    up = max(1, o.upsample_test_examples)
    return Workload(
        training_rows=training_rows + (up - 1) * test_example_rows,
        test_rows=test_rows,
        epochs=o.epochs,
        max_length=o.max_length,
        rows_per_step=o.batch_size * o.grad_accum * devices,
        max_steps=o.max_steps,
        upsample=up,
    )


def apply_plan(cfg: Config, plan: Plan) -> Config:
    """The config with the plan's epochs / max_length / max_steps, validated."""
    return cfg.override(plan_overrides(cfg, plan))


def plan_overrides(cfg: Config, plan: Plan) -> dict[str, Any]:
    """The plan's cuts as `--set` overrides for the member's process: the keys workload() reads, where they change."""
    planned = {"epochs": plan.epochs, "max_length": plan.max_length, "max_steps": plan.max_steps}
    return {k: v for k, v in planned.items() if getattr(cfg.options, k) != v}
