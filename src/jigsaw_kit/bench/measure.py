"""The bench's measurements, one phase each: a synthetic test set, padding, training steps, inference batches.

Timed on the device itself (CUDA synchronised before each clock read); memory as peak RSS and, on CUDA, the
allocator's peak per phase. run_bench (bench/__init__.py) runs them in order and writes bench.json.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NAIVE_MAX_LENGTH = 512
NAIVE_INFER_BATCH = 32


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


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024


class Gpu:
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


def _collator(tokenizer: Any, naive: bool, device: str, batches: list[tuple[int, int, int]]) -> Any:
    """The recipe's collator, recording (rows, real tokens, padded tokens) of each batch it pads."""
    from transformers import DataCollatorWithPadding

    if naive:
        base = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=NAIVE_MAX_LENGTH)
    else:  # as the kit's trainer
        base = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device == "cuda" else None)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        out = base(features)
        batches.append((len(features), int(out["attention_mask"].sum()), int(out["input_ids"].numel())))
        return out

    return collate


def _train_steps(cfg: Any, model: Any, tokenizer: Any, dataset: Any, collate: Any, naive: bool, steps: int,
                 device: str, precision: str, gpu: Gpu) -> list[float]:  # fmt: skip
    """Run the kit's Trainer for `steps` optimizer steps; the clock at the end of each step."""
    from transformers import PrinterCallback, TrainerCallback

    from jigsaw_kit.methods.transformer.trainer import kit_trainer_class, training_arguments

    ends: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            gpu.sync()  # CUDA is asynchronous: wait for the step before reading the clock
            ends.append(time.perf_counter())

    out_dir = Path(tempfile.mkdtemp(prefix="jigsaw-bench-"))
    try:
        # The kit's own TrainingArguments (train.training_arguments); only the naive recipe's order differs.
        args = training_arguments(cfg, out_dir, precision, use_cpu=device == "cpu", max_steps=steps,
                                  logging_steps=max(steps, 1), save_strategy="no",
                                  train_sampling_strategy="random" if naive else "group_by_length",
                                  disable_tqdm=True)  # fmt: skip
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
    return ends


def measure_training(
    cfg: Any, model_path: Path, tokenizer: Any, rows: pd.DataFrame, naive: bool, steps: int, device: str, gpu: Gpu
) -> dict[str, Any]:
    """Train `steps` optimizer steps with the kit's (or the naive) recipe; time steps 2..steps."""
    from transformers import set_seed

    from jigsaw_kit.core.checkpoints import load_classifier
    from jigsaw_kit.methods.transformer.modeling import resolve_precision
    from jigsaw_kit.methods.transformer.trainer import tokenize_rows

    dataset = tokenize_rows(tokenizer, rows, NAIVE_MAX_LENGTH if naive else cfg.options.max_length, with_labels=True)
    set_seed(cfg.seed)
    model = load_classifier(model_path)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    precision = resolve_precision(cfg) if device == "cuda" else "fp32"
    batches: list[tuple[int, int, int]] = []  # (rows, real tokens, padded tokens) per collated batch
    collate = _collator(tokenizer, naive, device, batches)
    ends = _train_steps(cfg, model, tokenizer, dataset, collate, naive, steps, device, precision, gpu)
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
    model: Any, tokenizer: Any, enc: dict, batches: list[np.ndarray], device: Any, pad_to: int | None, gpu: Gpu
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
