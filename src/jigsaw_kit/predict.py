"""Batched inference: sort by length, fill each batch up to a token budget, restore order.

Sorting means each batch pads to its own longest row, not to max_length; a token budget (rows x
longest length) keeps memory flat whether a batch holds short or long comments.

    jigsaw-kit predict --processed data/processed --run-dir runs/cpu-minilm --output submission.csv
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .checkpoints import load_classifier, load_tokenizer
from .config import Config
from .tfidf import TfidfRuleModel
from .train import load_trained, resolve_precision

log = logging.getLogger(__name__)


def token_budget_batches(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first, each padded size <= budget.

    A single row longer than the budget gets a batch of its own. Longest first so that an
    out-of-memory error shows up in the first batch, not after an hour.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, current, current_max = [], [], 0
    for i in order:
        n = int(lengths[i])
        new_max = max(current_max, n)
        if current and new_max * (len(current) + 1) > budget:
            batches.append(np.array(current))
            current, new_max = [], n
        current.append(i)
        current_max = new_max
    if current:
        batches.append(np.array(current))
    return batches


def predict_transformer(model_dir: Path, cfg: Config, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
    """P(violation) for each templated row, in the rows' order."""
    import torch

    tokenizer = load_tokenizer(model_dir)
    model = load_classifier(model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    precision = resolve_precision(cfg)
    a = rows["input_a"].tolist()
    b = rows["input_b"].tolist()
    pair = any(x is not None for x in b)
    enc = tokenizer(a, b if pair else None, truncation=True, max_length=cfg.max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    out = np.empty(len(rows), dtype=np.float64)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    batches = token_budget_batches(lengths, cfg.predict_token_budget)
    with torch.inference_mode():
        for idx in tqdm(batches, desc="predict", unit="batch", disable=not show_progress):
            feats = [{k: enc[k][i] for k in enc.keys()} for i in idx]
            batch = tokenizer.pad(feats, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(**batch).logits.float()
            out[idx] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
    return out


def predict(run_dir: Path, cfg: Config, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
    """Dispatch on the config's method; rows must already carry the template's inputs."""
    if rows.empty:
        return np.empty(0)
    trained = load_trained(run_dir, cfg)
    if isinstance(trained, TfidfRuleModel):
        return trained.predict(rows)
    return predict_transformer(trained, cfg, rows, show_progress=show_progress)
