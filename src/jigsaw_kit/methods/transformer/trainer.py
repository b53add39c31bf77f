"""The Hugging Face Trainer recipe: fine-tune a local checkpoint on labelled rows, resumably.

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
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from jigsaw_kit.core.atomic import atomic_path
from jigsaw_kit.core.checkpoints import check_max_length, load_tokenizer, resolve_model, weight_files
from jigsaw_kit.core.config import Config, load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.prep import upsample_test_examples
from jigsaw_kit.methods.guards import stop_info, training_guards
from jigsaw_kit.methods.transformer import modeling
from jigsaw_kit.methods.transformer.modeling import resolve_precision
from jigsaw_kit.methods.transformer.sampler import TightLengthSampler

log = logging.getLogger(__name__)


def tokenize_rows(tokenizer, rows: pd.DataFrame, max_length: int, with_labels: bool, chunk: int = 4096):
    """A datasets.Dataset of token ids (unpadded) plus a `length` column for length grouping.

    Tokenised `chunk` rows at a time, each chunk stored as Arrow before the next (as predict.encode): one call
    on all upsampled training rows held every row's heavy fast-tokenizer Encoding object at once.
    """
    from datasets import Dataset, concatenate_datasets

    a = rows["input_a"].tolist()
    b = rows["input_b"].tolist()
    pair = any(x is not None for x in b)
    labels = rows["label"].astype(int).tolist() if with_labels else None
    parts = []
    for s in range(0, max(len(a), 1), chunk):
        enc = tokenizer(a[s : s + chunk], b[s : s + chunk] if pair else None, truncation=True, max_length=max_length)
        data: dict[str, Any] = {k: enc[k] for k in enc.keys()}
        data["length"] = [len(ids) for ids in enc["input_ids"]]
        if labels is not None:
            data["labels"] = labels[s : s + chunk]
        parts.append(Dataset.from_dict(data))
        del enc, data
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


# Keys a resumed run may change: how long it runs and what it logs, not what it learns.
RESUMABLE_CHANGES = {"name", "epochs", "max_steps", "save_steps", "logging_steps", "predict_token_budget", "extra"}
CHECKPOINTS = "checkpoints"


def _checkpoint_complete(ckpt: Path) -> bool:
    # trainer_state.json is the last file the Trainer writes into a checkpoint; a folder being
    # rotated away loses files in any order, so check the others too.
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(weight_files(ckpt)) and (ckpt / "optimizer.pt").is_file() and (ckpt / "scheduler.pt").is_file()


def _checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-<step> folders of a run dir, oldest first."""
    d = Path(run_dir) / CHECKPOINTS
    found = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete Trainer checkpoint of a run dir, or None."""
    complete = [p for p in _checkpoints(run_dir) if _checkpoint_complete(p)]
    return complete[-1] if complete else None


def check_resume(cfg: Config, run_dir: Path, manifest: dict | None) -> Path:
    """The checkpoint to resume from, after checking the run dir holds the same run."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise KitError(
            f"--resume: no complete Trainer checkpoint in {run_dir / CHECKPOINTS}. The Trainer only saves "
            "checkpoints when save_steps > 0: start the run with --set save_steps=200 (or save_steps in the "
            "config), then --resume continues it after an interruption."
        )
    old_cfg = run_dir / "config.yaml"
    if old_cfg.is_file():
        # read as a config (a key it lacks ran at its default; an older kit's flat dump is refused with the fix)
        old = json.loads(json.dumps(load_config(str(old_cfg)).flat(), default=str))
        new = json.loads(json.dumps(cfg.flat(), default=str))
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


def training_arguments(cfg: Config, output_dir: Path, precision: str, use_cpu: bool, **changes: Any):
    """The kit's TrainingArguments for a config; `changes` override single fields (the bench's naive recipe)."""
    from transformers import TrainingArguments

    o = cfg.options
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=o.epochs,
        max_steps=o.max_steps,
        learning_rate=o.learning_rate,
        per_device_train_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum,
        warmup_steps=o.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
        weight_decay=o.weight_decay,
        label_smoothing_factor=o.label_smoothing,
        seed=cfg.seed,
        data_seed=cfg.seed,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        logging_steps=o.logging_steps,
        # a nan/inf step loss must reach the log (NanLossCallback), not be replaced by the window's mean
        logging_nan_inf_filter=False,
        save_strategy="steps" if o.save_steps > 0 else "no",
        save_steps=o.save_steps if o.save_steps > 0 else 500,
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


def kit_trainer_class():
    """The Trainer with the kit's length-grouped order (sampler.py) in place of transformers' own."""
    from transformers import Trainer

    class KitTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length" or "length" not in ds.column_names:
                return super()._get_train_sampler(train_dataset)
            return TightLengthSampler(ds["length"], self.args.train_batch_size)  # what the collator pads together

    return KitTrainer


def fine_tune(
    cfg: Config, rows: pd.DataFrame, run_dir: Path, resume_from: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fine-tune on templated rows; the model lands in run_dir/model.

    Returns (the Trainer's log history, guards.stop_info: whether the deadline stopped it early). Runs under
    methods.guards: JIGSAW_KIT_TRAIN_DEADLINE ends training early (the model is still saved), a nan/inf loss
    raises KitError.
    """
    import torch
    from transformers import DataCollatorWithPadding, set_seed

    if resume_from is None and (run_dir / CHECKPOINTS).exists():
        # A fresh run must not mix its checkpoints with an older run's (resume would pick the wrong one).
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    set_seed(cfg.seed)
    model_path = resolve_model(cfg.options.model)
    tokenizer = load_tokenizer(model_path)
    check_max_length(cfg.options.max_length, model_path, tokenizer)
    model = modeling.load_for_training(cfg, model_path, tokenizer)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    rows = upsample_test_examples(rows, cfg.options.upsample_test_examples)
    dataset = tokenize_rows(tokenizer, rows, cfg.options.max_length, with_labels=True)
    precision = resolve_precision(cfg)
    ckpt_dir = run_dir / CHECKPOINTS
    args = training_arguments(cfg, ckpt_dir, precision, use_cpu=not torch.cuda.is_available())
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    guards = training_guards()
    trainer = kit_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=guards,
    )
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    if trainer.is_world_process_zero():
        _save_model_atomic(trainer, tokenizer, run_dir / "model")
        atomic_path(run_dir / "trainer_state.json", lambda t: trainer.state.save_to_json(str(t)))
        # Only a resume needs them, and they are several times the model's size (Kaggle's disk is small).
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return list(trainer.state.log_history), stop_info(guards)


def _save_model_atomic(trainer, tokenizer, final: Path) -> None:
    """Save into a sibling folder, then swap it in: a crash mid-save never leaves a partial `model/`."""
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    modeling.save_trained(trainer.model, partial)
    tokenizer.save_pretrained(str(partial))
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
