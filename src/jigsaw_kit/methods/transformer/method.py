"""`method: transformer`: fine-tune any local checkpoint with the Hugging Face Trainer (trainer.py),
predict in length-sorted token-budget batches (predict.py), heads (heads.py, yes_no.py) and LoRA
(modeling.py) by its options (options.py).

    jigsaw-kit run --data-dir DIR --config cpu-minilm --output submission.csv
    torchrun --nproc_per_node=2 -m jigsaw_kit.cli train --processed data/processed --config kaggle-t4
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.base import Method
from jigsaw_kit.methods.transformer import trainer
from jigsaw_kit.methods.transformer.predict import predict_transformer

MODEL = "model"  # the fine-tuned checkpoint inside a run dir


class TransformerMethod(Method):
    name = "transformer"
    resumable = True
    gpu = "needs"
    fine_tunes = True
    modules = (*Method.modules, "datasets", "accelerate")  # the Trainer's dataset and its engine
    scores_vary = True

    @classmethod
    def imports(cls, cfg: Config) -> tuple[str, ...]:
        return (*cls.modules, "peft") if cfg.options.lora_r > 0 else cls.modules

    @classmethod
    def checkpoints(cls, cfg: Config) -> tuple[str, ...]:
        return (cfg.options.model,)  # `encoders` attach to the embedding methods only

    @classmethod
    def title(cls, cfg: Config) -> str:
        return cfg.options.model

    @classmethod
    def step_cap(cls, cfg: Config, steps: int) -> dict[str, Any]:
        return {"max_steps": steps}

    @classmethod
    def device_overrides(cls, cfg: Config, gpu: bool, bf16: bool) -> tuple[dict[str, Any], str]:
        if cfg.options.precision != "fp16":
            return {}, ""
        if not gpu:  # fp16 on the CPU is a certain crash: slow in fp32 beats no member at all
            return {"precision": "auto"}, "no GPU seen, so precision auto (fp32) instead of fp16"
        if bf16:  # fp16 is for the T4; bf16 does not overflow
            return {"precision": "bf16"}, "every GPU runs fast bf16 (sm_80+), so bf16 instead of fp16"
        return {}, ""

    @classmethod
    def trial(cls, cfg: Config, steps: int) -> Config:
        # logging at the last step gives the Trainer's train_runtime; no checkpoint: the probe's model is thrown away
        return cfg.override({"max_steps": steps, "logging_steps": max(1, steps), "save_steps": 0})

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.model_dir: Path | None = None

    def fit(
        self,
        rows: pd.DataFrame,
        work_dir: Path | None = None,
        resume_from: Path | None = None,
        unlabelled: pd.DataFrame | None = None,
    ) -> TransformerMethod:
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="jigsaw-kit-"))
        self.log_history, self.train_info = trainer.fine_tune(self.cfg, rows, work_dir, resume_from)
        self.model_dir = work_dir / MODEL
        return self

    def predict(self, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
        if self.model_dir is None:
            raise KitError("this transformer method is not fitted: fit it or load a run dir first.")
        return predict_transformer(self.model_dir, self.cfg, rows, show_progress=show_progress)

    def save(self, run_dir: Path) -> None:
        dest = Path(run_dir) / MODEL
        if self.model_dir is not None and self.model_dir.resolve() != dest.resolve():
            shutil.copytree(self.model_dir, dest, dirs_exist_ok=True)

    @classmethod
    def load(cls, run_dir: Path, cfg: Config) -> TransformerMethod:
        p = Path(run_dir) / MODEL
        if not (p / "config.json").is_file():
            raise KitError(f"{p} holds no trained model: train first (`jigsaw-kit train --config {cfg.name}`).")
        m = cls(cfg)
        m.model_dir = p
        return m

    def passes(self, rows: int) -> float:
        o = self.cfg.options
        if o.max_steps <= 0:
            return o.epochs
        rows_per_step = o.batch_size * o.grad_accum * int(os.environ.get("WORLD_SIZE", "1"))
        return o.max_steps * rows_per_step / max(rows, 1)

    @classmethod
    def unfinished(cls, run_dir: Path) -> Path | None:
        return trainer.latest_checkpoint(run_dir)

    @classmethod
    def resume_point(cls, cfg: Config, run_dir: Path, manifest: dict | None) -> Path:
        return trainer.check_resume(cfg, run_dir, manifest)
