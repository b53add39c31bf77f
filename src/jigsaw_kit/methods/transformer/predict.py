"""Batched inference: sort by length, fill each batch up to a token budget, restore order.

Sorting means each batch pads to its own longest row, not to max_length; a token budget (rows x
longest length) keeps memory flat whether a batch holds short or long comments.

    jigsaw-kit predict --processed data/processed --run-dir runs/cpu-minilm --output submission.csv
    # two GPUs (Kaggle 2x T4): one process per GPU, each predicts a contiguous shard of the batches
    torchrun --nproc_per_node=2 -m jigsaw_kit.cli predict --processed data/processed --run-dir runs/kaggle-t4

Scale-out, in order of preference:
- under torchrun (WORLD_SIZE > 1) each rank predicts a contiguous, token-balanced shard of the
  length-sorted batches and the shards are exchanged with torch.distributed.all_gather_object
  (nccl on GPUs, gloo on CPU), so every rank returns the full array in the rows' order;
- in one process that sees several CUDA devices, one model replica per device, one thread each
  (the GIL is released inside CUDA kernels, so the threads overlap);
- otherwise one device.
On CUDA out-of-memory a batch is split in two and retried, and later batches are capped at the
size that fitted, with a warning: a smaller predict_token_budget would avoid the retries.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jigsaw_kit.core.checkpoints import load_tokenizer
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.batching import shard_batches, token_budget_batches
from jigsaw_kit.methods.transformer import modeling
from jigsaw_kit.methods.transformer.modeling import resolve_precision

log = logging.getLogger(__name__)

Encoding = dict[str, list[list[int]]]


def encode(tokenizer: Any, rows: pd.DataFrame, max_length: int, chunk: int = 4096) -> Encoding:
    """Unpadded token ids (and masks, type ids) of the rows' template inputs, truncated to max_length.

    Tokenized in chunks: a fast tokenizer's result keeps a heavy per-row Encoding object (tokens,
    offsets, word ids) alive until it is dropped; one call on 54,000 rows held ~1 GB of them at once.
    """
    a = rows["input_a"].tolist()
    b = rows["input_b"].tolist()
    pair = any(x is not None for x in b)
    out: Encoding = {}
    for s in range(0, len(a), chunk):
        enc = tokenizer(a[s : s + chunk], b[s : s + chunk] if pair else None, truncation=True, max_length=max_length)
        for k in enc.keys():
            out.setdefault(k, []).extend(enc[k])
    return out


def _forward(model: Any, batch: dict[str, Any]) -> Any:
    """The model call, alone in a function so tests can make it raise out-of-memory."""
    return model(**batch).logits


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError)


def predict_batches(
    model: Any,
    tokenizer: Any,
    enc: Encoding,
    batches: Sequence[np.ndarray],
    device: Any,
    dtype: Any = None,
    pad_to: int | None = None,
    show_progress: bool = False,
    desc: str = "predict",
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, P(class 1)) for the rows in `batches`, in the order they ran.

    pad_to pads every batch to that length (the naive recipe the bench compares against);
    None pads each batch to its longest row. On CUDA out-of-memory the batch is split in two and
    retried; later batches larger than the half that fitted are split before they run. One function
    (~75 lines): the queue, the cap and the out-of-memory retry share their state within the loop.
    """
    import torch

    lengths = np.array([len(x) for x in enc["input_ids"]])
    pad_multiple = 8 if getattr(device, "type", str(device)) == "cuda" and pad_to is None else None
    cap = float("inf")  # padded tokens per batch known to fit; lowered after an out-of-memory error
    work: deque[np.ndarray] = deque(np.asarray(b) for b in batches if len(b))
    done_idx: list[np.ndarray] = []
    done_p: list[np.ndarray] = []
    bar = tqdm(total=sum(len(b) for b in work), desc=desc, unit="row", disable=not show_progress)
    with torch.inference_mode():
        while work:
            idx = work.popleft()
            size = len(idx) * (pad_to or int(lengths[idx].max()))
            if len(idx) > 1 and size > cap:
                half = (len(idx) + 1) // 2
                work.extendleft([idx[half:], idx[:half]])  # extendleft reverses: first half runs first
                continue
            feats = [{k: enc[k][i] for k in enc} for i in idx]
            padding = "max_length" if pad_to else True
            batch = tokenizer.pad(
                feats, padding=padding, max_length=pad_to, pad_to_multiple_of=pad_multiple, return_tensors="pt"
            )
            batch = {k: v.to(device) for k, v in batch.items()}
            oom = False
            try:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = _forward(model, batch).float()
            except Exception as e:
                if not _is_oom(e):
                    raise
                oom = True  # handled below, outside the except block, so the failed tensors can be freed
            if oom:
                del batch
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if len(idx) == 1:
                    raise KitError(
                        f"one row of {int(lengths[idx[0]])} tokens does not fit in GPU memory on {device}. "
                        "Lower max_length in the config, or free the GPU (another process may hold it)."
                    )
                half = (len(idx) + 1) // 2
                cap = min(cap, half * (pad_to or int(lengths[idx].max())))
                log.warning(
                    "CUDA out of memory on a batch of %d rows (%d padded tokens) on %s: splitting it in two and "
                    "retrying; later batches are capped at %d padded tokens. Lower predict_token_budget to avoid this.",
                    len(idx),
                    size,
                    device,
                    cap,
                )
                work.extendleft([idx[half:], idx[:half]])
                continue
            done_idx.append(idx)
            done_p.append(torch.softmax(logits, dim=-1)[:, 1].cpu().numpy().astype(np.float64))
            bar.update(len(idx))
    bar.close()
    if not done_idx:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return np.concatenate(done_idx), np.concatenate(done_p)


def _dist_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _predict_distributed(
    model: Any, tokenizer: Any, enc: Encoding, batches: list[np.ndarray], n: int, dtype: Any, show_progress: bool
) -> np.ndarray:
    """torchrun: this rank's shard, then all_gather_object so every rank holds all predictions."""
    import torch
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        created = True
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    model.to(device)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    mine = shard_batches(batches, lengths, rank, world)
    log.info("rank %d/%d: predicting %d of %d batches on %s", rank, world, len(mine), len(batches), device)
    part = predict_batches(model, tokenizer, enc, mine, device, dtype, show_progress=show_progress and rank == 0)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, part)
    if created:
        dist.destroy_process_group()
    return _assemble(gathered, n)


def _predict_multi_gpu(
    model: Any, tokenizer: Any, enc: Encoding, batches: list[np.ndarray], n: int, dtype: Any, show_progress: bool
) -> np.ndarray:
    """One process, several CUDA devices: a model replica and a thread per device."""
    import torch

    devices = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    return predict_on_devices(model, tokenizer, enc, batches, n, devices, dtype, show_progress)


def predict_on_devices(
    model: Any,
    tokenizer: Any,
    enc: Encoding,
    batches: list[np.ndarray],
    n: int,
    devices: Sequence[Any],
    dtype: Any = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Split the batches into contiguous shards, one per device, run them in threads, restore order."""
    lengths = np.array([len(x) for x in enc["input_ids"]])
    world = len(devices)
    # copy before moving, so no device ever holds two replicas
    replicas = [copy.deepcopy(model).to(d) for d in devices[1:]]
    replicas.insert(0, model.to(devices[0]))

    def run(k: int) -> tuple[np.ndarray, np.ndarray]:
        shard = shard_batches(batches, lengths, k, world)
        return predict_batches(
            replicas[k], tokenizer, enc, shard, devices[k], dtype, show_progress=show_progress and k == 0
        )

    with ThreadPoolExecutor(max_workers=world) as pool:
        parts = list(pool.map(run, range(world)))
    return _assemble(parts, n)


def _assemble(parts: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Scatter (indices, probabilities) pieces back into row order; every row exactly once."""
    out = np.full(n, np.nan)
    seen = np.zeros(n, dtype=np.int64)
    for idx, p in parts:
        out[idx] = p
        np.add.at(seen, idx, 1)
    if not (seen == 1).all():
        raise RuntimeError(f"internal: {int((seen != 1).sum())} rows predicted zero or several times")
    return out


def predict_transformer(model_dir: Path, cfg: Config, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
    """P(violation) for each templated row, in the rows' order."""
    import torch

    tokenizer = load_tokenizer(model_dir)
    model = modeling.load_for_inference(model_dir, cfg)
    model.eval()
    precision = resolve_precision(cfg)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    enc = encode(tokenizer, rows, cfg.options.max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    on_gpu = torch.cuda.is_available()
    # On GPU batches are padded to a multiple of 8 (tensor cores): budget with the rounded lengths.
    budget_lengths = -(-lengths // 8) * 8 if on_gpu else lengths
    batches = token_budget_batches(budget_lengths, cfg.options.predict_token_budget)
    _, world = _dist_world()
    if world > 1:
        return _predict_distributed(model, tokenizer, enc, batches, len(rows), dtype, show_progress)
    if on_gpu and torch.cuda.device_count() > 1:
        return _predict_multi_gpu(model, tokenizer, enc, batches, len(rows), dtype, show_progress)
    device = torch.device("cuda" if on_gpu else "cpu")
    model.to(device)
    idx, p = predict_batches(model, tokenizer, enc, batches, device, dtype, show_progress=show_progress)
    return _assemble([(idx, p)], len(rows))
