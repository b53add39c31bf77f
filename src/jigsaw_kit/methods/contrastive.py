"""`method: contrastive`: the hybrid (hybrid.py) on a sentence encoder first fine-tuned SetFit-style.

    jigsaw-kit cv --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-contrastive --scheme lb-proxy

What the fast Kaggle winners did: one encoder for all rules, tuned on pairs of the labelled rows so
that comments sharing a rule and a label move together and opposite labels apart; then per-rule
heads on its embeddings. Here the pairs are built inside each rule (same label -> similarity 1,
other label -> 0) and trained with sentence-transformers' CosineSimilarityLoss and its trainer (the
Hugging Face Trainer underneath); the heads are the hybrid's (per-rule logistic regressions on the
tuned embeddings and on TF-IDF, averaged, plus the exact lookup). Few steps and a frozen lower half:
naive triplet training over-fitted the example pool (README, "Quality").

`tune.objective: triplets` tunes as the public notebook that 3rd, 5th, 9th and 12th place built on: the
rule's own text is the anchor, a violating comment of that rule the positive, a compliant one the
negative, so the encoder learns what each rule is about; `tune.negated_rules` adds each triplet again,
anchored on the rule's negation with the comments swapped (3rd place). Same step budget as pairs.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.checkpoints import resolve_model, set_offline
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.base import Method
from jigsaw_kit.methods.guards import stop_info, training_guards
from jigsaw_kit.methods.hybrid import HybridRuleModel
from jigsaw_kit.methods.rulewise import rule_positions

log = logging.getLogger(__name__)

ENCODER = "encoder"  # the tuned encoder inside a run dir
NEGATION = "This comment does not break the rule: {rule}"  # the negated_rules anchor
# Cosine distance (1 - cos) in [0, 2]; MiniLM puts a rule and a comment at cosine ~0.1-0.5, so 0.3 asks for
# a clear gap that a few steps can reach (the loss's default 5 is for unnormalised Euclidean distances).
TRIPLET_MARGIN = 0.3


def rule_pairs(rows: pd.DataFrame, n: int, seed: int) -> dict[str, list]:
    """Up to n (text, text, similarity) pairs: each labelled row with one same-label and one other-label
    partner of its rule. A rule with fewer than two texts of a label gives no pairs (nothing to contrast)."""
    rng = np.random.default_rng(seed)
    texts, y = rows["text"].astype(str).to_numpy(), rows["label"].to_numpy().astype(int)
    a: list[str] = []
    b: list[str] = []
    sim: list[float] = []
    for idx in rule_positions(rows["rule"]).values():
        by = {k: idx[y[idx] == k] for k in (0, 1)}
        if min(len(by[0]), len(by[1])) < 2:
            continue
        for i in idx:
            same = by[y[i]][by[y[i]] != i]
            a += [texts[i], texts[i]]
            b += [texts[rng.choice(same)], texts[rng.choice(by[1 - y[i]])]]
            sim += [1.0, 0.0]
    order = rng.permutation(len(a))[:n]
    return {"sentence1": [a[o] for o in order], "sentence2": [b[o] for o in order], "label": [sim[o] for o in order]}


def rule_triplets(rows: pd.DataFrame, n: int, seed: int, negated: bool = False) -> dict[str, list]:
    """Up to n (anchor, positive, negative) triplets: the rule's text, a violating and a compliant comment of
    that rule. Each labelled row of a rule with both classes appears once, beside a random row of the other
    class. negated: each triplet also anchored on NEGATION with positive and negative swapped."""
    rng = np.random.default_rng(seed)
    texts, y = rows["text"].astype(str).to_numpy(), rows["label"].to_numpy().astype(int)
    out: dict[str, list] = {"anchor": [], "positive": [], "negative": []}

    def add(anchor: str, positive: str, negative: str) -> None:
        out["anchor"].append(anchor)
        out["positive"].append(positive)
        out["negative"].append(negative)

    for rule, idx in rule_positions(rows["rule"]).items():
        by = {k: idx[y[idx] == k] for k in (0, 1)}
        if min(len(by[0]), len(by[1])) < 1:
            continue
        for i in idx:
            other = texts[rng.choice(by[1 - y[i]])]
            pos, neg = (texts[i], other) if y[i] == 1 else (other, texts[i])
            add(str(rule), pos, neg)
            if negated:
                add(NEGATION.format(rule=rule), neg, pos)
    order = rng.permutation(len(out["anchor"]))[:n]
    return {k: [v[o] for o in order] for k, v in out.items()}


def tune_examples(cfg: Config, rows: pd.DataFrame, n: int) -> dict[str, list]:
    """The tune's training columns for cfg.options.tune.objective; a KitError when no rule can give any."""
    if cfg.options.tune.objective == "triplets":
        data = rule_triplets(rows, n, cfg.seed, cfg.options.tune.negated_rules)
        need = "a labelled text of each class"
    else:
        data = rule_pairs(rows, n, cfg.seed)
        need = "two labelled texts of each class to pair"
    if not next(iter(data.values())):
        raise KitError(f"contrastive: no rule has {need}; use --config cpu-hybrid.")
    return data


def _loss(cfg: Config, encoder):
    from sentence_transformers.sentence_transformer.losses import (
        CosineSimilarityLoss,
        TripletDistanceMetric,
        TripletLoss,
    )

    if cfg.options.tune.objective == "pairs":
        return CosineSimilarityLoss(encoder)
    # TripletLoss, not MultipleNegativesRankingLoss: with a handful of rules a batch holds each rule's anchor
    # many times, and MNRL would score every other same-rule row's violating comment as a negative of this
    # anchor (it masks no duplicates), contradicting the labels; TripletLoss compares only the row's own pair.
    return TripletLoss(encoder, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=TRIPLET_MARGIN)


def tune_encoder(cfg: Config, rows: pd.DataFrame, out_dir: Path, info: dict[str, Any] | None = None) -> Path:
    """Fine-tune the options' model on rule pairs or triplets (tune.objective) for tune.steps steps; save it
    (sentence-transformers folder) to out_dir. Runs under methods.guards (deadline, nan loss); `info`, when
    given, receives guards.stop_info (whether the deadline stopped the tune early)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args

    set_offline()
    tune = cfg.options.tune
    steps = tune.steps
    data = tune_examples(cfg, rows, steps * tune.batch_size)
    on_gpu = torch.cuda.is_available()
    # local_files_only: sentence-transformers otherwise asks the Hub about the "base model" for its model card
    device = "cuda" if on_gpu else "cpu"
    encoder = SentenceTransformer(str(resolve_model(cfg.options.model)), device=device, local_files_only=True)
    encoder.max_seq_length = cfg.options.max_length
    _freeze_lower(encoder, tune.freeze_layers)
    work = Path(tempfile.mkdtemp(prefix="jigsaw-kit-st-"))
    args = Args(
        output_dir=str(work),
        max_steps=steps,
        per_device_train_batch_size=tune.batch_size,
        learning_rate=tune.learning_rate,
        warmup_steps=tune.warmup_ratio,  # a float in [0, 1) is a ratio of the steps in transformers 5
        seed=cfg.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, steps // 4),
        logging_nan_inf_filter=False,  # a nan loss must reach NanLossCallback
        use_cpu=not on_gpu,
        fp16=on_gpu and not torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
    )
    size = len(next(iter(data.values())))
    name = Path(cfg.options.model).name
    log.info("contrastive: tuning %s on %d rule %s, %d steps", name, size, tune.objective, steps)
    guards = training_guards()
    trainer = SentenceTransformerTrainer(
        model=encoder, args=args, train_dataset=Dataset.from_dict(data), loss=_loss(cfg, encoder), callbacks=guards
    )
    try:
        trainer.train()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if info is not None:
        info.update(stop_info(guards))
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder.save(str(partial), create_model_card=False)  # a model card would be fetched from the Hub
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)  # a crash mid-save never leaves a half encoder under the final name
    # The embedding pass loads the saved encoder on its own: drop the trainer's copy (held in reference
    # cycles, so only the collector frees it) before the 54k-row embedding and TF-IDF passes peak.
    del trainer, encoder
    gc.collect()
    return out_dir


def _freeze_lower(encoder, n: int) -> None:
    """Freeze the token embeddings and the lowest n layers: few labels, so tune only the top."""
    if n <= 0:
        return
    backbone = encoder[0].auto_model
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if getattr(backbone, "embeddings", None) is None or layers is None:
        raise KitError(
            f"tune.freeze_layers {n}: {type(backbone).__name__} has no embeddings / encoder.layer to freeze; "
            "set tune.freeze_layers: 0 for this checkpoint."
        )
    for module in [backbone.embeddings, *list(layers)[:n]]:
        for p in module.parameters():
            p.requires_grad = False


class ContrastiveHybrid(HybridRuleModel):
    name = "contrastive"
    file = "contrastive.joblib"
    modules = (*HybridRuleModel.modules, "datasets", "sentence_transformers")  # the tune is a SentenceTransformer's

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.encoder_dir: Path | None = None

    @classmethod
    def step_cap(cls, cfg: Config, steps: int) -> dict[str, Any]:
        return {"tune.steps": steps}

    @classmethod
    def tune_steps(cls, cfg: Config) -> int:
        return cfg.options.tune.steps

    def encoder(self) -> Path:
        if self.encoder_dir is None:
            raise KitError("the contrastive method is not fitted: its tuned encoder is missing.")
        return self.encoder_dir

    def fit(
        self, rows: pd.DataFrame, work_dir: Path | None = None, resume_from: Path | None = None
    ) -> ContrastiveHybrid:
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="jigsaw-kit-"))
        work_dir.mkdir(parents=True, exist_ok=True)
        self.encoder_dir = tune_encoder(self.cfg, rows, work_dir / ENCODER, info=self.train_info)
        return super().fit(rows, work_dir)

    def save(self, run_dir: Path) -> None:
        dest = Path(run_dir) / ENCODER
        if self.encoder_dir is not None and self.encoder_dir.resolve() != dest.resolve():
            shutil.copytree(self.encoder_dir, dest, dirs_exist_ok=True)
        super().save(run_dir)

    @classmethod
    def load(cls, run_dir: Path, cfg: Config) -> Method:
        method = super().load(run_dir, cfg)
        method.encoder_dir = Path(run_dir) / ENCODER  # the run dir may have moved since it was saved
        if not (method.encoder_dir / "config.json").is_file():
            raise KitError(f"{method.encoder_dir} holds no tuned encoder: train again with --config {cfg.name}.")
        return method
