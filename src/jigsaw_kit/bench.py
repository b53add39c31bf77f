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
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.atomic import write_json
from jigsaw_kit.core.errors import KitError

log = logging.getLogger(__name__)

KAGGLE_TEST_ROWS = 54_059  # the hidden test (released after the competition)
NAIVE_MAX_LENGTH = 512
NAIVE_INFER_BATCH = 32
DEFAULT_T4_SPEEDUP_OVER_CPU = 50.0


def synthetic_test(train_rows: pd.DataFrame, n: int, template: str, seed: int = 0) -> pd.DataFrame:
    """n test-like rows: (rule, text) drawn independently, with replacement, from the processed rows."""
    from jigsaw_kit.data.prep import apply_template

    rng = np.random.default_rng(seed)
    texts = train_rows["text"].drop_duplicates().to_numpy()
    rules = train_rows["rule"].drop_duplicates().to_numpy()
    df = pd.DataFrame(
        {
            "row_id": np.arange(n, dtype=np.int64),
            "rule": rng.choice(rules, size=n, replace=True),
            "text": rng.choice(texts, size=n, replace=True),
            "subreddit": "",
        }
    )
    return apply_template(df, template)


def kit_epoch_padding_efficiency(lengths: list[int], batch_size: int, seed: int) -> float:
    """Real / computed tokens over one epoch of the kit's length-grouped sampler (no model run)."""
    import torch

    from jigsaw_kit.methods.transformer.sampler import TightLengthSampler, padding_efficiency

    sampler = TightLengthSampler(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
    return padding_efficiency(lengths, list(sampler), batch_size)


def project(
    train_rows: int,
    epochs: float,
    train_rows_per_s: float,
    infer_rows_per_s: float,
    speedup: float,
    test_rows: int = KAGGLE_TEST_ROWS,
) -> dict[str, Any]:
    """Hours for training + inference at measured rates, divided by an assumed speedup; with the arithmetic."""
    train_s = train_rows * epochs / train_rows_per_s
    infer_s = test_rows / infer_rows_per_s
    here_h = (train_s + infer_s) / 3600
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


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024


class _Gpu:
    """Peak CUDA memory per phase; no-ops on CPU."""

    def __init__(self, device: str) -> None:
        self.on = device == "cuda"
        self.peaks: dict[str, float] = {}

    def sync(self) -> None:
        if self.on:
            import torch

            torch.cuda.synchronize()

    def start(self) -> None:
        if self.on:
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def stop(self, phase: str) -> None:
        if self.on:
            import torch

            self.peaks[phase] = torch.cuda.max_memory_allocated() / (1 << 20)


def measure_training(
    cfg: Any, model_path: Path, tokenizer: Any, rows: pd.DataFrame, naive: bool, steps: int, device: str, gpu: _Gpu
) -> dict[str, Any]:
    """Train `steps` optimizer steps with the kit's (or the naive) recipe; time steps 2..steps."""
    from transformers import (
        DataCollatorWithPadding,
        PrinterCallback,
        TrainerCallback,
        set_seed,
    )

    from jigsaw_kit.core.checkpoints import load_classifier
    from jigsaw_kit.methods.transformer.modeling import resolve_precision
    from jigsaw_kit.methods.transformer.trainer import kit_trainer_class, tokenize_rows, training_arguments

    max_length = NAIVE_MAX_LENGTH if naive else cfg.options.max_length
    dataset = tokenize_rows(tokenizer, rows, max_length, with_labels=True)
    set_seed(cfg.seed)
    model = load_classifier(model_path)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    precision = resolve_precision(cfg) if device == "cuda" else "fp32"
    batches: list[tuple[int, int, int]] = []  # (rows, real tokens, padded tokens) per collated batch

    if naive:
        base = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=NAIVE_MAX_LENGTH)
    else:  # as the kit's trainer
        base = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device == "cuda" else None)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        out = base(features)
        batches.append((len(features), int(out["attention_mask"].sum()), int(out["input_ids"].numel())))
        return out

    ends: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            gpu.sync()  # CUDA is asynchronous: wait for the step before reading the clock
            ends.append(time.perf_counter())

    out_dir = Path(tempfile.mkdtemp(prefix="jigsaw-bench-"))
    try:
        # The kit's own TrainingArguments (train.training_arguments); only the naive recipe's order differs.
        args = training_arguments(
            cfg,
            out_dir,
            precision,
            use_cpu=device == "cpu",
            max_steps=steps,
            logging_steps=max(steps, 1),
            save_strategy="no",
            train_sampling_strategy="random" if naive else "group_by_length",
            disable_tqdm=True,
        )
        trainer = kit_trainer_class()(  # the kit's order; the naive recipe's "random" falls through to transformers'
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=collate,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
        trainer.remove_callback(PrinterCallback)  # keep the bench's stdout to its table
        gpu.start()
        trainer.train()
        gpu.stop("train_naive" if naive else "train_kit")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    ga = cfg.options.grad_accum
    # accelerate may collate one batch ahead; step k used batches [k*ga, (k+1)*ga)
    ran = batches[: steps * ga]
    timed = ran[ga:]
    seconds = ends[-1] - ends[0]
    real = sum(b[1] for b in ran)
    padded = sum(b[2] for b in ran)
    return {
        "steps": steps,
        "timed_steps": steps - 1,
        "timed_seconds": seconds,
        "rows_per_s": sum(b[0] for b in timed) / seconds,
        "tokens_per_s": sum(b[1] for b in timed) / seconds,
        "computed_tokens_per_s": sum(b[2] for b in timed) / seconds,
        "padding_efficiency_ran": real / padded,
        "mean_real_tokens_per_row": real / sum(b[0] for b in ran),
        "precision": precision,
        "lengths": dataset["length"],
    }


def measure_inference(
    model: Any, tokenizer: Any, enc: dict, batches: list[np.ndarray], device: Any, pad_to: int | None, gpu: _Gpu
) -> dict[str, Any]:
    from jigsaw_kit.methods.batching import padded_tokens
    from jigsaw_kit.methods.transformer.predict import predict_batches

    lengths = np.array([len(x) for x in enc["input_ids"]])
    gpu.start()
    gpu.sync()
    t0 = time.perf_counter()
    idx, p = predict_batches(model, tokenizer, enc, batches, device, pad_to=pad_to)
    gpu.sync()
    dt = time.perf_counter() - t0
    gpu.stop("infer_naive" if pad_to else "infer_kit")
    rows = len(idx)
    return {
        "rows": rows,
        "batches": len(batches),
        "seconds": dt,
        "rows_per_s": rows / dt,
        "tokens_per_s": float(lengths[idx].sum() / dt),
        "padding_efficiency_ran": float(lengths[idx].sum() / padded_tokens(lengths, batches, pad_to)),
        "probs": dict(zip(idx.tolist(), p.tolist())),
    }


def run_bench(
    cfg: Any,
    data_dir: str | None,
    device: str | None,
    output_dir: Path,
    kaggle_config: str = "kaggle-t4",
    train_rows: int | None = None,
    train_steps: int = 20,
    naive_steps: int = 5,
    test_rows: int = 2000,
    naive_test_rows: int = 160,
    speedup: float | None = None,
    rehearsal_rows: int = KAGGLE_TEST_ROWS,
) -> dict[str, Any]:
    """Run every measurement; return (and write to output_dir/bench.json) the results."""
    import torch

    from jigsaw_kit.core.checkpoints import load_classifier, load_tokenizer, resolve_model
    from jigsaw_kit.core.config import load_config
    from jigsaw_kit.data import dataset
    from jigsaw_kit.data.competition import load_competition
    from jigsaw_kit.data.prep import melt
    from jigsaw_kit.methods.batching import padded_tokens, token_budget_batches
    from jigsaw_kit.methods.transformer.predict import encode, predict_batches

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA GPU is visible to torch here. Use --device cpu.")
    if train_steps < 2 or naive_steps < 2:
        raise KitError("--train-steps and --naive-steps must be >= 2 (the first step is warm-up, not timed).")
    if test_rows < 2 or naive_test_rows < 1 or rehearsal_rows < 2:
        raise KitError("--test-rows and --rehearsal-rows must be >= 2, --naive-test-rows >= 1.")
    if cfg.method != "transformer":
        raise KitError(f"bench measures a transformer; config '{cfg.name}' has method {cfg.method}.")
    kcfg = load_config(kaggle_config)
    if speedup is None:
        speedup = DEFAULT_T4_SPEEDUP_OVER_CPU if device == "cpu" else 1.0
    output_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    gpu = _Gpu(device)

    comp = load_competition(data_dir)
    processed = dataset.build(comp, cfg)
    rows = processed.train
    if train_rows is not None and train_rows < len(rows):
        rows = rows.sample(n=train_rows, random_state=cfg.seed).reset_index(drop=True)
    # Hidden test example rows, estimated from train.csv: distinct (rule, example) pairs per row.
    ex = melt(comp.train, "train", include_bodies=False).drop_duplicates(["rule", "text"])
    pairs_per_row = len(ex) / len(comp.train)
    kaggle_train_rows = len(processed.train) + round(KAGGLE_TEST_ROWS * pairs_per_row)

    model_path = resolve_model(cfg.options.model)
    tokenizer = load_tokenizer(model_path)
    threads = torch.get_num_threads()
    log.info("bench: %s on %s (%d torch threads), %d training rows", model_path, device, threads, len(rows))

    # Kit phases first, naive last: ru_maxrss only grows, so the peak after the kit phases is the kit's
    # own (a naive 512-token training step alone can take several GB on CPU).
    rss: dict[str, float] = {"data": _peak_rss_mb()}
    kit_train = measure_training(cfg, model_path, tokenizer, rows, False, train_steps, device, gpu)
    rss["train_kit"] = _peak_rss_mb()
    kit_lengths = kit_train.pop("lengths")
    pad_eff_kit = kit_epoch_padding_efficiency(kit_lengths, cfg.options.batch_size, cfg.seed)  # padded micro-batches

    # The 54,059-row rehearsal: build, tokenize and batch the full synthetic test set.
    t0 = time.perf_counter()
    test = synthetic_test(processed.train, rehearsal_rows, cfg.template, seed=cfg.seed)
    enc = encode(tokenizer, test, cfg.options.max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    all_batches = token_budget_batches(lengths, cfg.options.predict_token_budget)
    rehearsal_s = time.perf_counter() - t0
    rss["rehearsal"] = _peak_rss_mb()
    infer_pad_eff_kit = float(lengths.sum() / padded_tokens(lengths, all_batches))
    infer_pad_eff_naive = float(np.minimum(lengths, NAIVE_MAX_LENGTH).sum() / (len(lengths) * NAIVE_MAX_LENGTH))

    dev = torch.device(device)
    model = load_classifier(model_path).to(dev).eval()
    n_kit, n_naive = min(test_rows, rehearsal_rows), min(naive_test_rows, rehearsal_rows)
    sub = {k: v[:n_kit] for k, v in enc.items()}
    kit_batches = token_budget_batches(lengths[:n_kit], cfg.options.predict_token_budget)
    naive_batches = [np.arange(i, min(i + NAIVE_INFER_BATCH, n_naive)) for i in range(0, n_naive, NAIVE_INFER_BATCH)]
    predict_batches(model, tokenizer, sub, [np.arange(2)], dev)  # warm-up: first-call allocations, untimed
    kit_inf = measure_inference(model, tokenizer, sub, kit_batches, dev, None, gpu)
    rss["infer_kit"] = _peak_rss_mb()
    peak_rss_kit = rss["infer_kit"]

    naive_train = measure_training(cfg, model_path, tokenizer, rows, True, naive_steps, device, gpu)
    rss["train_naive"] = _peak_rss_mb()
    naive_lengths = np.asarray(naive_train.pop("lengths"))
    pad_eff_naive = float(naive_lengths.mean() / NAIVE_MAX_LENGTH)
    naive_inf = measure_inference(model, tokenizer, sub, naive_batches, dev, NAIVE_MAX_LENGTH, gpu)
    rss["infer_naive"] = _peak_rss_mb()
    # Same model, same rows: padding and order must not change the probabilities.
    common = [i for i in naive_inf["probs"] if i in kit_inf["probs"]]
    max_diff = max((abs(kit_inf["probs"][i] - naive_inf["probs"][i]) for i in common), default=float("nan"))
    kit_inf.pop("probs")
    naive_inf.pop("probs")

    proj = project(kaggle_train_rows, kcfg.options.epochs, kit_train["rows_per_s"], kit_inf["rows_per_s"], speedup)
    result: dict[str, Any] = {
        "model": str(model_path),
        "device": device if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        "torch_threads": threads,
        "config": cfg.name,
        "batch_size": cfg.options.batch_size,
        "max_length": cfg.options.max_length,
        "predict_token_budget": cfg.options.predict_token_budget,
        "train_rows_per_s_kit": kit_train["rows_per_s"],
        "train_rows_per_s_naive": naive_train["rows_per_s"],
        "train_speedup": kit_train["rows_per_s"] / naive_train["rows_per_s"],
        "train_tokens_per_s_kit": kit_train["tokens_per_s"],
        "train_tokens_per_s_naive": naive_train["tokens_per_s"],
        "padding_efficiency_kit": pad_eff_kit,
        "padding_efficiency_naive": pad_eff_naive,
        "infer_rows_per_s_kit": kit_inf["rows_per_s"],
        "infer_rows_per_s_naive": naive_inf["rows_per_s"],
        "infer_speedup": kit_inf["rows_per_s"] / naive_inf["rows_per_s"],
        "infer_padding_efficiency_kit_rehearsal": infer_pad_eff_kit,
        "infer_padding_efficiency_naive_rehearsal": infer_pad_eff_naive,
        "infer_max_abs_diff_kit_vs_naive": max_diff,
        "rehearsal_rows": rehearsal_rows,
        "rehearsal_build_tokenize_batch_s": rehearsal_s,
        "rehearsal_batches": len(all_batches),
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_kit": peak_rss_kit,
        "peak_rss_mb_after_phase": rss,
        # other processes on the machine slow every number above; the load average says how busy it was
        "load_average_1min_start_end": [load_start, os.getloadavg()[0]],
        **({"peak_gpu_mb": max(gpu.peaks.values()), "peak_gpu_mb_by_phase": gpu.peaks} if gpu.on else {}),
        "kaggle_config": kcfg.name,
        "kaggle_epochs": kcfg.options.epochs,
        "kaggle_train_rows_estimate": kaggle_train_rows,
        "train_rows_after_dedup": len(processed.train),
        "hidden_test_example_pairs_per_row_assumed": pairs_per_row,
        "assumed_t4_speedup_over_device": speedup,
        **proj,
        "train_kit": kit_train,
        "train_naive": naive_train,
        "infer_kit": kit_inf,
        "infer_naive": naive_inf,
        "bench_seconds": time.perf_counter() - t_start,
    }
    write_json(output_dir / "bench.json", result)
    return result


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
        f"batches of {NAIVE_INFER_BATCH} padded to {NAIVE_MAX_LENGTH}), projected linearly to {KAGGLE_TEST_ROWS}; "
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
        f"{r['train_rows_after_dedup']} after dedup + {KAGGLE_TEST_ROWS} x "
        f"{r['hidden_test_example_pairs_per_row_assumed']:.3f} hidden-test example pairs per row (ASSUMED, "
        "the rate in train.csv)",
        f"  {r['projection_arithmetic']}",
        f"  projected Kaggle time: {r['projected_kaggle_hours']:.2f} h on one T4, "
        f"{r['projected_kaggle_hours_2xt4_ideal']:.2f} h on 2x T4 if torchrun scaled ideally (both ASSUMED)",
        f"  on the measured device itself: {r['projected_hours_here']:.2f} h",
    ]
    return "\n".join(lines)
