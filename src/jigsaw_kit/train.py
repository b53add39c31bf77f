"""Fine-tune a local checkpoint on labelled rows with the Hugging Face Trainer (or fit TF-IDF).

    jigsaw-kit train --processed data/processed --config cpu-minilm
    # two GPUs (Kaggle 2x T4): the Trainer runs DDP under torchrun
    torchrun --nproc_per_node=2 -m jigsaw_kit.cli train --processed data/processed --config kaggle-t4

The run directory keeps the resolved config, the model + tokenizer, the Trainer's log history,
timings and library versions, so a submission can be traced to what made it.

Interruptions: with `save_steps` > 0 the Trainer keeps its latest checkpoints (weights, optimizer,
scheduler, RNG, step) in `<run_dir>/checkpoints`, and `jigsaw-kit train --resume` continues from
the newest complete one (a checkpoint cut off mid-save is skipped). The resumed run must use the
same config (up to the step/epoch budget and logging) and the same data, which is checked. After a
successful run the checkpoints are deleted (they are large and only serve a resume); the final
Trainer state stays as `<run_dir>/trainer_state.json`. Every file of the run dir is written to a
temporary name and renamed, so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from . import __version__, models
from .atomic import atomic_path, write_json
from .checkpoints import load_tokenizer, resolve_model
from .config import Config, save_config
from .errors import KitError
from .hybrid import HybridRuleModel
from .prep import upsample_test_examples
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


# Keys a resumed run may change: how long it runs and what it logs, not what it learns.
RESUMABLE_CHANGES = {"name", "epochs", "max_steps", "save_steps", "logging_steps", "predict_token_budget", "extra"}
CHECKPOINTS = "checkpoints"
# methods fitted in seconds by scikit-learn, saved whole with joblib in the run dir
FITTED_FILES = {"tfidf-lr": "tfidf.joblib", "hybrid": "hybrid.joblib"}


def _checkpoint_complete(ckpt: Path) -> bool:
    # trainer_state.json is the last file the Trainer writes into a checkpoint; a folder being
    # rotated away loses files in any order, so check the others too.
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    has_weights = any(ckpt.glob("*.safetensors")) or any(ckpt.glob("*.bin"))
    return has_weights and (ckpt / "optimizer.pt").is_file() and (ckpt / "scheduler.pt").is_file()


def _checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-<step> folders of a run dir, oldest first."""
    d = Path(run_dir) / CHECKPOINTS
    found = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete Trainer checkpoint of a run dir, or None."""
    complete = [p for p in _checkpoints(run_dir) if _checkpoint_complete(p)]
    return complete[-1] if complete else None


def _check_resume(cfg: Config, run_dir: Path, manifest: dict | None) -> Path:
    """The checkpoint to resume from, after checking the run dir holds the same run."""
    if cfg.method != "transformer":
        raise KitError(f"--resume: method {cfg.method} trains in seconds and keeps no checkpoints; drop --resume.")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise KitError(
            f"--resume: no complete Trainer checkpoint in {run_dir / CHECKPOINTS}. The Trainer only saves "
            "checkpoints when save_steps > 0: start the run with --set save_steps=200 (or save_steps in the "
            "config), then --resume continues it after an interruption."
        )
    old_cfg = run_dir / "config.yaml"
    if old_cfg.is_file():
        import yaml

        # A key the saved config lacks (written by an older kit) ran at its default.
        defaults = json.loads(json.dumps(Config().to_dict(), default=str))
        old = {**defaults, **(yaml.safe_load(old_cfg.read_text(encoding="utf-8")) or {})}
        new = json.loads(json.dumps(cfg.to_dict(), default=str))
        diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
            raise KitError(
                f"--resume: the config differs from the one that started {run_dir} ({shown}). Resume with the "
                f"same --config/--set (only {', '.join(sorted(RESUMABLE_CHANGES - {'extra', 'name'}))} may "
                "change), or start a new run in another --run-dir."
            )
    old_manifest = run_dir / "data_manifest.json"
    if manifest is not None and old_manifest.is_file():
        keys = ("hashes", "template", "use_test_examples", "counts")
        old = json.loads(old_manifest.read_text(encoding="utf-8"))
        new = json.loads(json.dumps(manifest, default=str))
        diff = [k for k in keys if old.get(k) != new.get(k)]
        if diff:
            raise KitError(
                f"--resume: the processed data differs from the data {run_dir} was started on ({', '.join(diff)}). "
                "Resume with the same --processed folder (or rebuild it from the same files)."
            )
    for stale in _checkpoints(run_dir):
        if int(stale.name.split("-", 1)[1]) > int(ckpt.name.split("-", 1)[1]):
            log.warning("removing %s: cut off while it was being saved", stale)
            shutil.rmtree(stale, ignore_errors=True)
    return ckpt


def train(
    cfg: Config, rows: pd.DataFrame, run_dir: Path, manifest: dict | None = None, resume: bool = False
) -> TrainResult:
    """Train on templated labelled rows (input_a, input_b, label); save everything in run_dir.

    resume=True continues from the newest complete checkpoint in run_dir/checkpoints (KitError if none).
    """
    if rows.empty:
        raise KitError("no labelled rows to train on: check the data folder and use_test_examples.")
    run_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _check_resume(cfg, run_dir, manifest) if resume else None
    if resume_from is None and (run_dir / CHECKPOINTS).exists():
        # A fresh run must not mix its checkpoints with an older run's (resume would pick the wrong one).
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    main_process = _rank() == 0  # under torchrun every rank runs this; one writes the run files
    if main_process:
        atomic_path(run_dir / "config.yaml", lambda t: save_config(cfg, t))
        write_json(run_dir / "versions.json", versions())
        if manifest is not None:
            write_json(run_dir / "data_manifest.json", manifest)
    t0 = time.perf_counter()
    if cfg.method in FITTED_FILES:
        model = (TfidfRuleModel if cfg.method == "tfidf-lr" else HybridRuleModel)(cfg).fit(rows)
        atomic_path(run_dir / FITTED_FILES[cfg.method], lambda t: joblib.dump(model, t))
        history: list[dict[str, Any]] = []
    else:
        history = _train_transformer(cfg, rows, run_dir, resume_from)
    dt = time.perf_counter() - t0
    rows_per_step = cfg.batch_size * cfg.grad_accum * _world_size()
    if cfg.method in FITTED_FILES:  # one pass over the rows; epochs and max_steps do not apply
        epochs = 1.0
    else:
        epochs = cfg.epochs if cfg.max_steps <= 0 else cfg.max_steps * rows_per_step / max(len(rows), 1)
    result = TrainResult(run_dir, dt, len(rows), len(rows) * epochs / dt if dt > 0 else float("nan"), history)
    if not main_process:
        return result
    write_json(run_dir / "log_history.json", history)
    write_json(
        run_dir / "train_metrics.json",
        {
            "train_time_s": dt,  # of this process: a resumed run counts only its own part
            "rows": len(rows),
            "epochs": epochs,
            "rows_per_s": result.rows_per_s,
            "resumed_from": resume_from.name if resume_from is not None else None,
        },
    )
    return result


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_max_length(max_length: int, model_path: Path, tokenizer) -> None:
    """max_length must fit the checkpoint: the tokenizer's model_max_length, else the position table."""
    limit = getattr(tokenizer, "model_max_length", None)
    what = "model_max_length in its tokenizer_config.json"
    if not limit or limit >= 100_000:  # transformers' "unset" sentinel is ~1e30
        limit = models.read_model_config(model_path).get("max_position_embeddings")
        what = "max_position_embeddings in its config.json"
    if isinstance(limit, int) and max_length > limit:
        raise KitError(
            f"max_length {max_length} exceeds what {model_path} takes ({limit}, {what}); "
            f"set max_length <= {limit} (--set max_length={limit})."
        )


def training_arguments(cfg: Config, output_dir: Path, precision: str, use_cpu: bool, **changes: Any):
    """The kit's TrainingArguments for a config; `changes` override single fields (the bench's naive recipe)."""
    from transformers import TrainingArguments

    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
        weight_decay=cfg.weight_decay,
        label_smoothing_factor=cfg.label_smoothing,
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
        use_cpu=use_cpu,
        # every parameter gets a gradient each step; finding unused ones costs a graph walk per step
        ddp_find_unused_parameters=False,
    )
    kwargs.update(changes)
    return TrainingArguments(**kwargs)


def _train_transformer(
    cfg: Config, rows: pd.DataFrame, run_dir: Path, resume_from: Path | None = None
) -> list[dict[str, Any]]:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    set_seed(cfg.seed)
    model_path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(model_path)
    check_max_length(cfg.max_length, model_path, tokenizer)
    model = models.load_for_training(cfg, model_path, tokenizer)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    rows = upsample_test_examples(rows, cfg.upsample_test_examples)
    dataset = tokenize_rows(tokenizer, rows, cfg.max_length, with_labels=True)
    precision = resolve_precision(cfg)
    ckpt_dir = run_dir / CHECKPOINTS
    args = training_arguments(cfg, ckpt_dir, precision, use_cpu=not torch.cuda.is_available())
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer)
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    if trainer.is_world_process_zero():
        _save_model_atomic(trainer, tokenizer, run_dir / "model")
        atomic_path(run_dir / "trainer_state.json", lambda t: trainer.state.save_to_json(str(t)))
        # Only a resume needs them, and they are several times the model's size (Kaggle's disk is small).
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return list(trainer.state.log_history)


def _save_model_atomic(trainer, tokenizer, final: Path) -> None:
    """Save into a sibling folder, then swap it in: a crash mid-save never leaves a partial `model/`."""
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    models.save_trained(trainer.model, partial)
    tokenizer.save_pretrained(str(partial))
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_trained(run_dir: Path, cfg: Config):
    """The fitted model of a run dir: an object with .predict(rows), or the path of the fine-tuned checkpoint."""
    if cfg.method in FITTED_FILES:
        p = run_dir / FITTED_FILES[cfg.method]
        if not p.is_file():
            raise KitError(f"{p} missing: train first (`jigsaw-kit train --config {cfg.name}`).")
        return joblib.load(p)
    p = run_dir / "model"
    if not (p / "config.json").is_file():
        raise KitError(f"{p} holds no trained model: train first (`jigsaw-kit train --config {cfg.name}`).")
    return p
