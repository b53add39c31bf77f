"""Measured throughput of the kit's recipe against a naive one, a 54,059-row rehearsal, a Kaggle projection.

    jigsaw-kit bench --data-dir ../shared/data/jigsaw-agile-community-rules --model weights/all-MiniLM-L6-v2 \\
        --output-dir /tmp/bench [--device cpu|cuda] [--train-rows N] [--test-rows N]

Everything runs in one process, on one machine, with one model, and is written to
OUTPUT_DIR/bench.json (keys below) after a table on stdout:

- training, rows/s and real tokens/s over a fixed number of optimizer steps (the first step is
  warm-up and not timed). Kit = the transformer method's recipe: HF Trainer with
  the kit's length-grouped order (methods/transformer/sampler.py) + DataCollatorWithPadding (pad
  each batch to its longest row). Naive = the same Trainer and batch size, rows padded to 512 tokens, random order.
  On CPU a 512-token step is slow, so the naive recipe runs fewer steps (--naive-steps); per-step
  cost at a fixed 512 tokens does not depend on which rows are drawn, so few steps suffice.
- padding efficiency = real tokens / tokens computed: for the kit over one full epoch of the
  length-grouped sampler (exact, no model run), for naive mean length / 512 (exact), plus the
  value over the batches that were actually timed.
- inference on a synthetic test set of 54,059 rows: (rule, text) pairs drawn independently and
  with replacement from the processed training rows (every train body and every example text,
  deduplicated, with their rules), then templated like real test rows. All 54,059 rows
  (--rehearsal-rows) are built, tokenized and batched, timed: the rehearsal of the pipeline at the
  hidden test's scale (memory included). The model runs on the first --test-rows of them
  (a random sample, as the draw is random) and rows/s is projected linearly to 54,059.
  Kit = methods.batching.token_budget_batches (length-sorted, token budget from the config).
  Naive = fixed batches of 32 in file order, padded to 512, on the first --naive-test-rows.
- peak resident memory (getrusage; the kit's phases run first, so the peak after them is the
  kit's own) and, on CUDA, torch.cuda.max_memory_allocated per phase.
- the machine's 1-minute load average at start and end: on a shared machine other work slows
  every wall-clock number, and not equally across phases.
- projected Kaggle wall time: train rows = this data's rows after dedup + the hidden test's
  example rows (estimated: 54,059 x distinct example pairs per row in train.csv; an assumption),
  x epochs of the Kaggle config, at the kit's training rows/s; + 54,059 rows at the kit's inference
  rows/s. Measured on CPU, the T4 figure divides by --assume-t4-speedup, an ASSUMPTION (no GPU
  measurement exists here), printed as such, with the arithmetic, into bench.json. Its default, 50,
  is a guess for one T4 in fp16 against two shared x86 cores on a 22M-parameter encoder; run the
  bench on the GPU itself (--device cuda, speedup 1) to replace the guess with a measurement.

Keys: train_rows_per_s_kit, train_rows_per_s_naive, train_tokens_per_s_kit, train_tokens_per_s_naive,
padding_efficiency_kit, padding_efficiency_naive, infer_rows_per_s_kit, infer_rows_per_s_naive,
peak_rss_mb, peak_gpu_mb (CUDA only), projected_kaggle_hours, projection_arithmetic, and details.

Kaggle 2x T4 (one process per GPU; the Trainer runs DDP, predict shards the batches):

    torchrun --nproc_per_node=2 -m jigsaw_kit.cli train --processed data/processed --config kaggle-t4 \\
        --run-dir runs/kaggle-t4
    torchrun --nproc_per_node=2 -m jigsaw_kit.cli predict --processed data/processed --run-dir runs/kaggle-t4 \\
        --output submission.csv
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jigsaw_kit import methods
from jigsaw_kit.bench.measure import (
    NAIVE_INFER_BATCH,
    NAIVE_MAX_LENGTH,
    Gpu,
    kit_epoch_padding_efficiency,
    measure_inference,
    measure_training,
    peak_rss_mb,
    synthetic_test,
)
from jigsaw_kit.core.atomic import write_json
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS

__all__ = ["BenchSizes", "format_table", "kit_epoch_padding_efficiency", "project", "run_bench", "synthetic_test"]

log = logging.getLogger(__name__)

DEFAULT_T4_SPEEDUP_OVER_CPU = 50.0


@dataclass(frozen=True)
class BenchSizes:
    """How much the bench runs: the command line's --train-rows ... --rehearsal-rows."""

    train_rows: int | None = None  # sample this many training rows to draw batches from (None: all)
    train_steps: int = 20
    naive_steps: int = 5
    test_rows: int = 2000
    naive_test_rows: int = 160
    rehearsal_rows: int = HIDDEN_TEST_ROWS

    def check(self) -> None:
        if self.train_steps < 2 or self.naive_steps < 2:
            raise KitError("--train-steps and --naive-steps must be >= 2 (the first step is warm-up, not timed).")
        if self.test_rows < 2 or self.naive_test_rows < 1 or self.rehearsal_rows < 2:
            raise KitError("--test-rows and --rehearsal-rows must be >= 2, --naive-test-rows >= 1.")


def project(
    train_rows: int,
    epochs: float,
    train_rows_per_s: float,
    infer_rows_per_s: float,
    speedup: float,
    test_rows: int = HIDDEN_TEST_ROWS,
) -> dict[str, Any]:
    """Hours for training + inference at measured rates (kaggle/budget.py's time model), divided by an assumed
    speedup; with the arithmetic."""
    from jigsaw_kit.kaggle import budget

    # measured at the length the run uses: max_length is the same on both sides, so no length cost applies
    work = budget.Workload(training_rows=train_rows, test_rows=test_rows, epochs=epochs, max_length=1, rows_per_step=1)
    p = budget.project(work, budget.Throughput(train_rows_per_s, infer_rows_per_s, 1, "measured by the bench"))
    train_s, infer_s = p.train_s, p.predict_s
    here_h = p.total_s / 3600
    kaggle_h = here_h / speedup
    arithmetic = (
        f"train {train_rows} rows x {epochs:g} epochs / {train_rows_per_s:.2f} rows/s = {train_s:.0f} s; "
        f"inference {test_rows} rows / {infer_rows_per_s:.2f} rows/s = {infer_s:.0f} s; "
        f"total {train_s + infer_s:.0f} s = {here_h:.2f} h on the measured device; "
        f"/ {speedup:g} (ASSUMED speed ratio of one Kaggle T4 to the measured device) = {kaggle_h:.2f} h"
    )
    return {
        "train_s_here": train_s,
        "infer_s_here": infer_s,
        "projected_hours_here": here_h,
        "projected_kaggle_hours": kaggle_h,
        # two T4s under torchrun at best halve it (ideal scaling: an assumption too)
        "projected_kaggle_hours_2xt4_ideal": kaggle_h / 2,
        "projection_arithmetic": arithmetic,
    }


def _device(device: str | None) -> str:
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA GPU is visible to torch here. Use --device cpu.")
    return device


def _bench_data(cfg: Any, data_dir: str | None, train_rows: int | None) -> dict[str, Any]:
    """The processed data, the rows training draws from, and the Kaggle run's estimated training rows."""
    from jigsaw_kit.data import dataset
    from jigsaw_kit.data.competition import load_competition
    from jigsaw_kit.data.prep import melt

    comp = load_competition(data_dir)
    processed = dataset.build(comp, cfg)
    rows = processed.train
    if train_rows is not None and train_rows < len(rows):
        rows = rows.sample(n=train_rows, random_state=cfg.seed).reset_index(drop=True)
    # Hidden test example rows, estimated from train.csv: distinct (rule, example) pairs per row.
    ex = melt(comp.train, "train", include_bodies=False).drop_duplicates(["rule", "text"])
    pairs_per_row = len(ex) / len(comp.train)
    return {
        "processed": processed,
        "rows": rows,
        "kaggle_train_rows": len(processed.train) + round(HIDDEN_TEST_ROWS * pairs_per_row),
        "pairs_per_row": pairs_per_row,
    }


def _rehearse(cfg: Any, tokenizer: Any, train: Any, n: int) -> dict[str, Any]:
    """The hidden-size rehearsal: build, tokenize and batch n synthetic test rows, timed."""
    from jigsaw_kit.methods.batching import padded_tokens, token_budget_batches
    from jigsaw_kit.methods.transformer.predict import encode

    t0 = time.perf_counter()
    test = synthetic_test(train, n, cfg.template, seed=cfg.seed)
    enc = encode(tokenizer, test, cfg.options.max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    batches = token_budget_batches(lengths, cfg.options.predict_token_budget)
    seconds = time.perf_counter() - t0
    naive = float(np.minimum(lengths, NAIVE_MAX_LENGTH).sum() / (len(lengths) * NAIVE_MAX_LENGTH))
    return {
        "enc": enc,
        "lengths": lengths,
        "seconds": seconds,
        "batches": len(batches),
        "pad_eff_kit": float(lengths.sum() / padded_tokens(lengths, batches)),
        "pad_eff_naive": naive,
    }


def _max_diff(kit: dict[str, Any], naive: dict[str, Any]) -> float:
    """Same model, same rows: padding and order must not change the probabilities (popped from both)."""
    kp, npr = kit.pop("probs"), naive.pop("probs")
    common = [i for i in npr if i in kp]
    return max((abs(kp[i] - npr[i]) for i in common), default=float("nan"))


def _phases(cfg: Any, model_path: Path, tokenizer: Any, data: dict[str, Any], sizes: BenchSizes, device: str,
            gpu: Gpu) -> dict[str, Any]:  # fmt: skip
    """Every measurement, in the order that makes them honest: kit phases first, naive last (module docstring)."""
    import torch

    from jigsaw_kit.core.checkpoints import load_classifier
    from jigsaw_kit.methods.batching import token_budget_batches
    from jigsaw_kit.methods.transformer.predict import predict_batches

    rss: dict[str, float] = {"data": peak_rss_mb()}
    kit_train = measure_training(cfg, model_path, tokenizer, data["rows"], False, sizes.train_steps, device, gpu)
    rss["train_kit"] = peak_rss_mb()
    # micro-batches are padded: the sampler's epoch at the config's batch size
    pad_eff_kit = kit_epoch_padding_efficiency(kit_train.pop("lengths"), cfg.options.batch_size, cfg.seed)
    reh = _rehearse(cfg, tokenizer, data["processed"].train, sizes.rehearsal_rows)
    rss["rehearsal"] = peak_rss_mb()

    dev = torch.device(device)
    model = load_classifier(model_path).to(dev).eval()
    n_kit, n_naive = min(sizes.test_rows, sizes.rehearsal_rows), min(sizes.naive_test_rows, sizes.rehearsal_rows)
    sub = {k: v[:n_kit] for k, v in reh["enc"].items()}
    kit_batches = token_budget_batches(reh["lengths"][:n_kit], cfg.options.predict_token_budget)
    naive_batches = [np.arange(i, min(i + NAIVE_INFER_BATCH, n_naive)) for i in range(0, n_naive, NAIVE_INFER_BATCH)]
    predict_batches(model, tokenizer, sub, [np.arange(2)], dev)  # warm-up: first-call allocations, untimed
    kit_inf = measure_inference(model, tokenizer, sub, kit_batches, dev, None, gpu)
    rss["infer_kit"] = peak_rss_mb()

    naive_train = measure_training(cfg, model_path, tokenizer, data["rows"], True, sizes.naive_steps, device, gpu)
    rss["train_naive"] = peak_rss_mb()
    pad_eff_naive = float(np.asarray(naive_train.pop("lengths")).mean() / NAIVE_MAX_LENGTH)
    naive_inf = measure_inference(model, tokenizer, sub, naive_batches, dev, NAIVE_MAX_LENGTH, gpu)
    rss["infer_naive"] = peak_rss_mb()
    return {
        "kit_train": kit_train,
        "naive_train": naive_train,
        "kit_inf": kit_inf,
        "naive_inf": naive_inf,
        "pad_eff_kit": pad_eff_kit,
        "pad_eff_naive": pad_eff_naive,
        "max_diff": _max_diff(kit_inf, naive_inf),
        "rehearsal": reh,
        "rss": rss,
    }


def run_bench(
    cfg: Any,
    data_dir: str | None,
    device: str | None,
    output_dir: Path,
    kaggle_config: str = "kaggle-t4",
    sizes: BenchSizes = BenchSizes(),
    speedup: float | None = None,
) -> dict[str, Any]:
    """Run every measurement; return (and write to output_dir/bench.json) the results.

    Kit phases first, naive last: ru_maxrss only grows, so the peak after the kit phases is the kit's own
    (a naive 512-token training step alone can take several GB on CPU). Over 60 lines: most of it is
    bench.json's keys, listed in the order the file shows them.
    """
    import torch

    from jigsaw_kit.core.checkpoints import load_tokenizer, resolve_model
    from jigsaw_kit.core.config import load_config

    device = _device(device)
    sizes.check()
    if not methods.method_class(cfg.method).fine_tunes:
        raise KitError(f"bench measures a fine-tune; config '{cfg.name}' has method {cfg.method}, which trains none.")
    kcfg = load_config(kaggle_config)
    if speedup is None:
        speedup = DEFAULT_T4_SPEEDUP_OVER_CPU if device == "cpu" else 1.0
    output_dir.mkdir(parents=True, exist_ok=True)
    t_start, load_start, gpu = time.perf_counter(), os.getloadavg()[0], Gpu(device)
    data = _bench_data(cfg, data_dir, sizes.train_rows)
    model_path = resolve_model(cfg.options.model)
    tokenizer = load_tokenizer(model_path)
    threads = torch.get_num_threads()
    log.info("bench: %s on %s (%d torch threads), %d training rows", model_path, device, threads, len(data["rows"]))

    m = _phases(cfg, model_path, tokenizer, data, sizes, device, gpu)
    reh, rss = m["rehearsal"], m["rss"]
    rates = (m["kit_train"]["rows_per_s"], m["kit_inf"]["rows_per_s"])
    proj = project(data["kaggle_train_rows"], kcfg.options.epochs, *rates, speedup)
    result: dict[str, Any] = {
        "model": str(model_path),
        "device": device if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        "torch_threads": threads,
        "config": cfg.name,
        "batch_size": cfg.options.batch_size,
        "max_length": cfg.options.max_length,
        "predict_token_budget": cfg.options.predict_token_budget,
        **_speeds(m),
        "infer_padding_efficiency_kit_rehearsal": reh["pad_eff_kit"],
        "infer_padding_efficiency_naive_rehearsal": reh["pad_eff_naive"],
        "infer_max_abs_diff_kit_vs_naive": m["max_diff"],
        "rehearsal_rows": sizes.rehearsal_rows,
        "rehearsal_build_tokenize_batch_s": reh["seconds"],
        "rehearsal_batches": reh["batches"],
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_kit": rss["infer_kit"],
        "peak_rss_mb_after_phase": rss,
        # other processes on the machine slow every number above; the load average says how busy it was
        "load_average_1min_start_end": [load_start, os.getloadavg()[0]],
        **({"peak_gpu_mb": max(gpu.peaks.values()), "peak_gpu_mb_by_phase": gpu.peaks} if gpu.on else {}),
        "kaggle_config": kcfg.name,
        "kaggle_epochs": kcfg.options.epochs,
        "kaggle_train_rows_estimate": data["kaggle_train_rows"],
        "train_rows_after_dedup": len(data["processed"].train),
        "hidden_test_example_pairs_per_row_assumed": data["pairs_per_row"],
        "assumed_t4_speedup_over_device": speedup,
        **proj,
        "train_kit": m["kit_train"],
        "train_naive": m["naive_train"],
        "infer_kit": m["kit_inf"],
        "infer_naive": m["naive_inf"],
        "bench_seconds": time.perf_counter() - t_start,
    }
    write_json(output_dir / "bench.json", result)
    return result


def _speeds(m: dict[str, Any]) -> dict[str, float]:
    """bench.json's kit-vs-naive figures from _phases: rows/s, tokens/s, padding efficiency, speedups."""
    kt, nt, ki, ni = m["kit_train"], m["naive_train"], m["kit_inf"], m["naive_inf"]
    return {
        "train_rows_per_s_kit": kt["rows_per_s"],
        "train_rows_per_s_naive": nt["rows_per_s"],
        "train_speedup": kt["rows_per_s"] / nt["rows_per_s"],
        "train_tokens_per_s_kit": kt["tokens_per_s"],
        "train_tokens_per_s_naive": nt["tokens_per_s"],
        "padding_efficiency_kit": m["pad_eff_kit"],
        "padding_efficiency_naive": m["pad_eff_naive"],
        "infer_rows_per_s_kit": ki["rows_per_s"],
        "infer_rows_per_s_naive": ni["rows_per_s"],
        "infer_speedup": ki["rows_per_s"] / ni["rows_per_s"],
    }


def format_table(r: dict[str, Any]) -> str:
    """The human summary of a bench result."""
    kt, nt, ki, ni = r["train_kit"], r["train_naive"], r["infer_kit"], r["infer_naive"]
    lines = [
        f"bench: {Path(r['model']).name} on {r['device']} ({r['torch_threads']} torch threads), config "
        f"{r['config']} (batch {r['batch_size']}, max_length {r['max_length']}, "
        f"predict_token_budget {r['predict_token_budget']})",
        "",
        f"{'':34}{'kit':>12}{'naive':>12}{'kit/naive':>12}",
        f"{'train rows/s':34}{r['train_rows_per_s_kit']:>12.2f}{r['train_rows_per_s_naive']:>12.2f}"
        f"{r['train_speedup']:>11.1f}x",
        f"{'train real tokens/s':34}{r['train_tokens_per_s_kit']:>12.0f}{r['train_tokens_per_s_naive']:>12.0f}",
        f"{'train padding efficiency (epoch)':34}{r['padding_efficiency_kit']:>12.3f}"
        f"{r['padding_efficiency_naive']:>12.3f}",
        f"{'  in the timed batches':34}{kt['padding_efficiency_ran']:>12.3f}{nt['padding_efficiency_ran']:>12.3f}",
        f"{'infer rows/s':34}{r['infer_rows_per_s_kit']:>12.2f}{r['infer_rows_per_s_naive']:>12.2f}"
        f"{r['infer_speedup']:>11.1f}x",
        f"{'infer padding efficiency (all)':34}{r['infer_padding_efficiency_kit_rehearsal']:>12.3f}"
        f"{r['infer_padding_efficiency_naive_rehearsal']:>12.3f}",
        "",
        f"timed: training {kt['timed_steps']} steps (kit) vs {nt['timed_steps']} steps (naive: 512-token steps are "
        "slow on CPU; their cost does not depend on which rows are drawn); first step of each untimed (warm-up)",
        f"timed: inference on {ki['rows']} rows (kit, {ki['batches']} batches) vs {ni['rows']} rows (naive, "
        f"batches of {NAIVE_INFER_BATCH} padded to {NAIVE_MAX_LENGTH}), projected linearly to {HIDDEN_TEST_ROWS}; "
        f"max |p_kit - p_naive| on shared rows {r['infer_max_abs_diff_kit_vs_naive']:.1e}",
        f"rehearsal: {r['rehearsal_rows']} synthetic rows built, tokenized and batched in "
        f"{r['rehearsal_build_tokenize_batch_s']:.1f}s ({r['rehearsal_batches']} token-budget batches)",
        f"memory: peak RSS {r['peak_rss_mb_kit']:.0f} MB through the kit's phases, {r['peak_rss_mb']:.0f} MB overall ("
        + ", ".join(f"{k} {v:.0f}" for k, v in r["peak_rss_mb_after_phase"].items())
        + " MB after each phase)"
        + (f"; peak GPU {r['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in r else ""),
        f"machine load (1-min average) {r['load_average_1min_start_end'][0]:.1f} at start, "
        f"{r['load_average_1min_start_end'][1]:.1f} at end, for {os.cpu_count()} cores: other work slows every number",
        "",
        f"projection (config {r['kaggle_config']}): {r['kaggle_train_rows_estimate']} train rows = "
        f"{r['train_rows_after_dedup']} after dedup + {HIDDEN_TEST_ROWS} x "
        f"{r['hidden_test_example_pairs_per_row_assumed']:.3f} hidden-test example pairs per row (ASSUMED, "
        "the rate in train.csv)",
        f"  {r['projection_arithmetic']}",
        f"  projected Kaggle time: {r['projected_kaggle_hours']:.2f} h on one T4, "
        f"{r['projected_kaggle_hours_2xt4_ideal']:.2f} h on 2x T4 if torchrun scaled ideally (both ASSUMED)",
        f"  on the measured device itself: {r['projected_hours_here']:.2f} h",
    ]
    return "\n".join(lines)
