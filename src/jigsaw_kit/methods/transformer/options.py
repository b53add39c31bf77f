"""The options of `method: transformer` (a Hugging Face Trainer fine-tune), with their checks.

Small and free of heavy imports on purpose: loading a config imports this module (core.config.OPTIONS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.options import CheckpointOptions, counts, fraction, positive

if TYPE_CHECKING:
    from jigsaw_kit.core.config import Config

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
HEADS = ("auto", "seq-cls", "yes-no")


@dataclass
class TransformerOptions(CheckpointOptions):
    """Fine-tune `model` with a classification head (docs/models.md); the defaults are the CPU MiniLM recipe."""

    precision: str = "auto"  # auto: fp16 on GPUs without fast bf16 (T4), bf16 where fast, fp32 on CPU
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs (tests, smoke runs)
    learning_rate: float = 5e-5
    batch_size: int = 16  # per device
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    label_smoothing: float = 0.0  # soft targets (the labels are noisy: examples disagree with bodies 1% of the time)
    upsample_test_examples: int = 1  # repeat rows labelled by the test file's examples this many times in all
    logging_steps: int = 10
    save_steps: int = 0  # > 0 keeps Trainer checkpoints every N steps (resume); 0 keeps only the final model
    # backbone head and adapters (modeling.py, docs/models.md)
    head: str = "auto"  # auto | seq-cls | yes-no; encoders are always seq-cls, see heads.resolve_head
    lora_r: int = 0  # LoRA rank; 0 = full fine-tuning
    lora_alpha: int = 32  # LoRA scale is lora_alpha / lora_r
    lora_dropout: float = 0.05
    # LoRA on these linear layers of the backbone (last name component, e.g. q_proj), or all-linear
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    load_in_4bit: bool = False  # QLoRA: frozen NF4 base (bitsandbytes, CUDA only); needs lora_r > 0
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower

    def check(self, cfg: Config) -> None:
        where = f"config '{cfg.name}'"
        if self.precision not in PRECISIONS:
            raise KitError(f"{where}: precision must be one of {PRECISIONS}, got {self.precision!r}.")
        counts(cfg, batch_size=self.batch_size, grad_accum=self.grad_accum, logging_steps=self.logging_steps)
        if not math.isfinite(self.epochs) or (self.epochs <= 0 and self.max_steps <= 0):
            raise KitError(f"{where}: set epochs > 0 or max_steps > 0 (epochs is {self.epochs}).")
        positive(cfg, "learning_rate", self.learning_rate)
        if not 0 <= self.weight_decay < math.inf:
            raise KitError(f"{where}: weight_decay must be a finite number >= 0, got {self.weight_decay}.")
        if self.save_steps < 0:
            raise KitError(f"{where}: save_steps must be >= 0 (0 = keep only the final model), got {self.save_steps}.")
        if not 0 <= self.label_smoothing < 1 or self.upsample_test_examples < 1:
            raise KitError(f"{where}: label_smoothing must be in [0, 1) and upsample_test_examples >= 1.")
        fraction(cfg, "warmup_ratio", self.warmup_ratio, closed=False)
        self._check_backbone(cfg, where)
        super().check(cfg)

    def _check_backbone(self, cfg: Config, where: str) -> None:
        from jigsaw_kit.core.templates import ANSWER_SLOTS

        if self.head not in HEADS:
            raise KitError(f"{where}: head must be one of {HEADS}, got {self.head!r}.")
        if self.head == "yes-no" and cfg.template not in ANSWER_SLOTS:
            raise KitError(
                f"{where}: head yes-no needs a template that ends in an answer slot; "
                f"template {cfg.template!r} has none. Choose one of {sorted(ANSWER_SLOTS)}."
            )
        if self.lora_r < 0:
            raise KitError(f"{where}: lora_r must be >= 0 (0 = no LoRA), got {self.lora_r}.")
        if self.lora_r > 0 and self.lora_alpha <= 0:
            raise KitError(f"{where}: lora_alpha must be > 0, got {self.lora_alpha}.")
        if not 0 <= self.lora_dropout < 1:
            raise KitError(f"{where}: lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if "all-linear" in self.lora_target_modules and len(self.lora_target_modules) > 1:
            raise KitError(
                f"{where}: lora_target_modules is either [all-linear] or a list of layer names, "
                f"got {self.lora_target_modules}."
            )
        if self.load_in_4bit and self.lora_r <= 0:
            raise KitError(f"{where}: load_in_4bit (QLoRA) trains adapters on a frozen 4-bit base; set lora_r > 0.")
