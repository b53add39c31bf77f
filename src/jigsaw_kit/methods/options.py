"""The options of tfidf-lr, hybrid and contrastive, each with its own checks (the fine-tune's: transformer/options.py).

Small and free of heavy imports on purpose: loading a config imports this module (core.config.OPTIONS), and
must not import scikit-learn, pandas or torch. The YAML keys are these field names; the comments say what
each does, configs/*.yaml why a recipe sets it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from jigsaw_kit.core.config import MethodOptions
from jigsaw_kit.core.errors import KitError

if TYPE_CHECKING:
    from jigsaw_kit.core.config import Config

TUNE_OBJECTIVES = ("pairs", "triplets")  # contrastive.py's encoder tune
TUNE_PRECISIONS = ("fp32", "bf16", "auto")  # the encoder tune on the CPU (TuneOptions.precision)
EMBED_BACKENDS = ("auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")  # methods/embed_backends.py


def positive(cfg: Config, key: str, value: float) -> None:
    """value must be a finite number > 0 (written "not 0 < x" so that nan is refused too; inf diverges)."""
    if not 0 < value < math.inf:
        raise KitError(f"config '{cfg.name}': {key} must be a finite number > 0, got {value}.")


def counts(cfg: Config, **values: int) -> None:
    """Each of these must be > 0."""
    for key, value in values.items():
        if value <= 0:
            raise KitError(f"config '{cfg.name}': {key} must be > 0, got {value}.")


def fraction(cfg: Config, key: str, value: float, closed: bool = True) -> None:
    """value in [0, 1] (closed) or [0, 1)."""
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise KitError(f"config '{cfg.name}': {key} must be in [0, 1{']' if closed else ')'}, got {value}.")


@dataclass
class CheckpointOptions(MethodOptions):
    """What every method that loads a checkpoint shares."""

    model: str = "all-MiniLM-L6-v2"  # a folder path, or a name under weights/
    max_length: int = 256  # tokens per text (or pair); longer ones are truncated
    predict_token_budget: int = 16384  # padded tokens per inference batch (length-sorted batches)

    def check(self, cfg: Config) -> None:
        counts(cfg, max_length=self.max_length, predict_token_budget=self.predict_token_budget)
        super().check(cfg)


@dataclass
class TfidfOptions(MethodOptions):
    """`tfidf-lr`: TF-IDF word + character n-grams, a logistic regression per rule (also the hybrid's TF-IDF)."""

    tfidf_max_features: int = 50000  # per vectoriser (words, characters)
    tfidf_c: float = 4.0  # inverse L2 strength of the per-rule regression

    def check(self, cfg: Config) -> None:
        counts(cfg, tfidf_max_features=self.tfidf_max_features)
        positive(cfg, "tfidf_c", self.tfidf_c)
        super().check(cfg)


@dataclass
class HybridOptions(TfidfOptions, CheckpointOptions):
    """`hybrid`: TF-IDF and frozen-encoder embedding heads per rule, blended, plus the exact lookup."""

    MAY_BE_EMPTY: ClassVar[tuple[str, ...]] = ("encoders", "embed_c_grid")

    embed_c: float = 3.0  # inverse L2 strength of the per-rule logistic regression on embeddings
    # non-empty: each per-rule embedding LR picks its C from this grid by 3-fold AUC (rules differ in size and
    # separability, so one C under- or over-fits some); [] = embed_c everywhere
    embed_c_grid: list[float] = field(default_factory=list)
    tfidf_weight: float = 0.5  # weight of the TF-IDF probability; the embedding model gets the rest
    exact_lookup: bool = True  # a text labelled under its rule in the training rows takes that label
    # Extra frozen sentence encoders (paths or names under weights/), each with its own per-rule members beside
    # `model`'s (for contrastive, the tuned one); their scores are averaged, as different backbones err partly
    # differently (5th place on Kaggle averaged several). [] = `model` alone
    encoders: list[str] = field(default_factory=list)
    # > 0: per rule and encoder, also a distance-weighted cosine kNN over this many neighbours (5th place: 10-15);
    # it follows local clusters of near-duplicate comments that one linear boundary smooths over. 0 = off
    knn_k: int = 0
    knn_weight: float = 0.5  # the kNN's share of each encoder's score, the LR gets the rest (when knn_k > 0)
    # per rule and encoder, 4 features beside the embedding in its LR: cosine to the rule's violating-row centroid,
    # to its other-row centroid, their difference, and to the rule text's own embedding (a public notebook that
    # 3rd/5th/9th/12th place built on); the fit rows' own centroids leave the row out
    centroid_features: bool = False
    # > 0 (below 0.5): one round of pseudo-labels at fit, on the rows to be predicted; per rule the top this share of
    # them by score become violations, the bottom share not, and the heads are refitted with them (11th place). 0 = off
    pseudo_share: float = 0.0
    # where the sentence encoder runs (methods/embed_backends.py): torch-fp32 (the reference), torch-bf16,
    # onnx-fp32, onnx-int8 (ONNX Runtime, dynamic int8), or auto (the measured choice for this CPU; PyTorch on a
    # GPU). A backend this machine cannot run falls back to torch-fp32 with a warning
    embed_backend: str = "torch-fp32"

    def check(self, cfg: Config) -> None:
        positive(cfg, "embed_c", self.embed_c)
        fraction(cfg, "tfidf_weight", self.tfidf_weight)
        if any(not isinstance(e, str) or not e.strip() for e in self.encoders):
            raise KitError(f"config '{cfg.name}': encoders must be non-empty names or paths, got {self.encoders}.")
        if self.knn_k < 0:
            raise KitError(f"config '{cfg.name}': knn_k must be >= 0 (0 = no kNN), got {self.knn_k}.")
        fraction(cfg, "knn_weight", self.knn_weight)
        if not all(c > 0 for c in self.embed_c_grid):  # "not >" also catches nan
            raise KitError(f"config '{cfg.name}': embed_c_grid values must be > 0, got {self.embed_c_grid}.")
        if not (self.pseudo_share == 0 or 0 < self.pseudo_share < 0.5):  # also refuses nan
            raise KitError(
                f"config '{cfg.name}': pseudo_share must be 0 (off) or in (0, 0.5), got {self.pseudo_share}."
            )
        if self.embed_backend not in EMBED_BACKENDS:
            raise KitError(
                f"config '{cfg.name}': embed_backend must be one of {EMBED_BACKENDS}, got {self.embed_backend!r}."
            )
        super().check(cfg)


@dataclass
class TuneOptions(MethodOptions):
    """The contrastive method's encoder tune (`tune:` in YAML, `--set tune.steps=30`): a few steps on rule pairs or
    triplets, apart from a fine-tune's options. The defaults are what an unset key meant before they were split."""

    steps: int = 20  # optimizer steps
    batch_size: int = 16  # pairs or triplets per step
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1  # of the steps
    freeze_layers: int = 0  # freeze the token embeddings and this many lowest encoder layers
    # pairs: within-rule comment pairs, CosineSimilarityLoss; triplets: (rule text, violating comment, other
    # comment of that rule), TripletLoss (the public notebook's rule-anchored tune)
    objective: str = "pairs"
    negated_rules: bool = False  # triplets: also each triplet anchored on the rule's negation, labels swapped (3rd)
    # on the CPU: fp32, or bf16 autocast (the AVX512-BF16/AMX units run it ~1.4x faster), or auto (bf16 where the CPU
    # has those units, else fp32). A GPU tunes as before whatever this says: fp16 on cards without fast bf16
    precision: str = "fp32"

    def check(self, cfg: Config) -> None:
        counts(cfg, **{"tune.steps": self.steps, "tune.batch_size": self.batch_size})
        positive(cfg, "tune.learning_rate", self.learning_rate)
        fraction(cfg, "tune.warmup_ratio", self.warmup_ratio, closed=False)
        if self.freeze_layers < 0:
            raise KitError(f"config '{cfg.name}': tune.freeze_layers must be >= 0, got {self.freeze_layers}.")
        if self.objective not in TUNE_OBJECTIVES:
            raise KitError(
                f"config '{cfg.name}': tune.objective must be one of {TUNE_OBJECTIVES}, got {self.objective!r}."
            )
        if self.precision not in TUNE_PRECISIONS:
            raise KitError(
                f"config '{cfg.name}': tune.precision must be one of {TUNE_PRECISIONS}, got {self.precision!r}."
            )
        if self.negated_rules and self.objective != "triplets":
            raise KitError(
                f"config '{cfg.name}': tune.negated_rules needs tune.objective: triplets (it negates anchors)."
            )


@dataclass
class ContrastiveOptions(HybridOptions):
    """`contrastive`: the hybrid's heads on `model` tuned first (`tune`)."""

    # the flat names of the tune's keys before they had a group of their own
    LEGACY: ClassVar[dict[str, str]] = {
        "max_steps": "tune.steps",
        "batch_size": "tune.batch_size",
        "learning_rate": "tune.learning_rate",
        "warmup_ratio": "tune.warmup_ratio",
        "freeze_layers": "tune.freeze_layers",
        "tune_objective": "tune.objective",
        "negated_rules": "tune.negated_rules",
    }

    tune: TuneOptions = field(default_factory=TuneOptions)

    def check(self, cfg: Config) -> None:
        self.tune.check(cfg)
        super().check(cfg)
