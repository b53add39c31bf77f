"""Fine-tune a local checkpoint on labelled rows with the Hugging Face Trainer (or fit TF-IDF).

    jigsaw-kit train --processed data/processed --config cpu-minilm
    # two GPUs (Kaggle 2x T4): the Trainer runs DDP under torchrun
    torchrun --nproc_per_node=2 -m jigsaw_kit.cli train --processed data/processed --config kaggle-t4

The run directory keeps the resolved config, the model + tokenizer, the Trainer's log history,
timings and library versions, so a submission can be traced to what made it.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from . import __version__
from .checkpoints import load_classifier, load_tokenizer, resolve_model
from .config import Config, save_config
from .errors import KitError
from .tfidf import TfidfRuleModel

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    train_time_s: float
    rows: int
    rows_per_s: float
    log_history: list[dict[str, Any]] = field(default_factory=list)


def resolve_precision(cfg: Config) -> str:
    """fp32 on CPU; on CUDA bf16 where the GPU has fast bf16 (Ampere+), else fp16 (T4)."""
    import torch

    if cfg.precision != "auto":
        if cfg.precision in ("fp16", "bf16") and not torch.cuda.is_available():
            raise KitError(f"precision {cfg.precision} needs a CUDA GPU; use precision: auto or fp32 on CPU.")
        return cfg.precision
    if not torch.cuda.is_available():
        return "fp32"
    major, _ = torch.cuda.get_device_capability()
    return "bf16" if major >= 8 and torch.cuda.is_bf16_supported() else "fp16"


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {
        "jigsaw_kit": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def tokenize_rows(tokenizer, rows: pd.DataFrame, max_length: int, with_labels: bool):
    """A datasets.Dataset of token ids (unpadded) plus a `length` column for length grouping."""
    from datasets import Dataset

    a = rows["input_a"].tolist()
    b = rows["input_b"].tolist()
    pair = any(x is not None for x in b)
    enc = tokenizer(a, b if pair else None, truncation=True, max_length=max_length)
    data: dict[str, Any] = {k: enc[k] for k in enc.keys()}
    data["length"] = [len(ids) for ids in enc["input_ids"]]
    if with_labels:
        data["labels"] = rows["label"].astype(int).tolist()
    return Dataset.from_dict(data)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def train(cfg: Config, rows: pd.DataFrame, run_dir: Path, manifest: dict | None = None) -> TrainResult:
    """Train on templated labelled rows (input_a, input_b, label); save everything in run_dir."""
    if rows.empty:
        raise KitError("no labelled rows to train on: check the data folder and use_test_examples.")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    _write_json(run_dir / "versions.json", versions())
    if manifest is not None:
        _write_json(run_dir / "data_manifest.json", manifest)
    t0 = time.perf_counter()
    if cfg.method == "tfidf-lr":
        model = TfidfRuleModel(cfg).fit(rows)
        joblib.dump(model, run_dir / "tfidf.joblib")
        history: list[dict[str, Any]] = []
    else:
        history = _train_transformer(cfg, rows, run_dir)
    dt = time.perf_counter() - t0
    epochs = cfg.epochs if cfg.max_steps <= 0 else cfg.max_steps * cfg.batch_size * cfg.grad_accum / max(len(rows), 1)
    result = TrainResult(run_dir, dt, len(rows), len(rows) * epochs / dt if dt > 0 else float("nan"), history)
    _write_json(run_dir / "log_history.json", history)
    _write_json(
        run_dir / "train_metrics.json",
        {"train_time_s": dt, "rows": len(rows), "epochs": epochs, "rows_per_s": result.rows_per_s},
    )
    return result


def _train_transformer(cfg: Config, rows: pd.DataFrame, run_dir: Path) -> list[dict[str, Any]]:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    model_path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(model_path)
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max and model_max < 100_000 and cfg.max_length > model_max:
        raise KitError(f"max_length {cfg.max_length} exceeds what {model_path} takes ({model_max}); lower max_length.")
    model = load_classifier(model_path)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    dataset = tokenize_rows(tokenizer, rows, cfg.max_length, with_labels=True)
    precision = resolve_precision(cfg)
    ckpt_dir = run_dir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps if cfg.save_steps > 0 else 500,
        save_total_limit=2,
        report_to="none",
        train_sampling_strategy="group_by_length",  # little padding per batch: the big CPU/GPU win
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer)
    trainer.train()
    if trainer.is_world_process_zero():
        trainer.save_model(str(run_dir / "model"))
        tokenizer.save_pretrained(str(run_dir / "model"))
    return list(trainer.state.log_history)


def load_trained(run_dir: Path, cfg: Config):
    """The fitted model of a run dir: a TF-IDF object, or the path of the fine-tuned checkpoint."""
    if cfg.method == "tfidf-lr":
        p = run_dir / "tfidf.joblib"
        if not p.is_file():
            raise KitError(f"{p} missing: train first (`jigsaw-kit train --config {cfg.name}`).")
        return joblib.load(p)
    p = run_dir / "model"
    if not (p / "config.json").is_file():
        raise KitError(f"{p} holds no trained model: train first (`jigsaw-kit train --config {cfg.name}`).")
    return p


def summarize_history(history: list[dict[str, Any]]) -> dict[str, float]:
    losses = [h["loss"] for h in history if "loss" in h]
    return {"first_loss": float(losses[0]), "last_loss": float(losses[-1])} if losses else {}
