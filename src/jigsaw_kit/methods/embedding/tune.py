"""The encoder tune (SetFit's first phase): the base encoder fine-tuned on the labelled rows, few steps.

`pairs`: within-rule comment pairs, same label -> similarity 1, other label -> 0, CosineSimilarityLoss. What
the fast Kaggle winners did: comments sharing a rule and a label move together, opposite labels apart.
`triplets`: the public notebook that 3rd, 5th, 9th and 12th place built on: the rule's own text is the anchor,
a violating comment of that rule the positive, a compliant one the negative (TripletLoss, cosine), so the
encoder learns what each rule is about; `negated_rules` adds each triplet again, anchored on the rule's
negation with the comments swapped (3rd place). Same step budget for both. Few steps and a frozen lower
half: naive triplet training over-fitted the example pool (README, "Quality").

A finished tune is kept in the tune cache (tune_cache.py), keyed by everything that decides its weights, so
a CV re-run tunes nothing and its embeddings hit the embedding cache too.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.checkpoints import set_offline
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.memory import release_freed_heap
from jigsaw_kit.methods.embedding import tune_cache
from jigsaw_kit.methods.guards import stop_info, training_guards
from jigsaw_kit.methods.options import TuneOptions
from jigsaw_kit.methods.rulewise import rule_positions

log = logging.getLogger(__name__)

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


class EncoderTune:
    """Tunes a base encoder folder on the rows' pairs or triplets; run() returns the tuned folder. Its options are
    the contrastive config's `tune` group (methods/options.TuneOptions, checked when the config loads)."""

    def __init__(self, options: TuneOptions, seed: int, max_length: int) -> None:
        self.options, self.seed, self.max_length = options, seed, max_length

    def examples(self, rows: pd.DataFrame) -> dict[str, list]:
        """The tune's training columns (steps x batch of them at most); a KitError when no rule can give any."""
        o, n = self.options, self.options.steps * self.options.batch_size
        if o.objective == "triplets":
            data, need = rule_triplets(rows, n, self.seed, o.negated_rules), "a labelled text of each class"
        else:
            data, need = rule_pairs(rows, n, self.seed), "two labelled texts of each class to pair"
        if not next(iter(data.values())):
            raise KitError(f"contrastive: no rule has {need}; use --config cpu-hybrid.")
        return data

    def key_parts(self) -> dict[str, Any]:
        """Everything of this part that decides the tuned weights, for the tune cache's key."""
        loss = {"margin": TRIPLET_MARGIN, "negation": NEGATION} if self.options.objective == "triplets" else {}
        return {
            "options": dataclasses.asdict(self.options),
            "cpu_bf16": self.cpu_bf16(),  # what "auto" meant on this CPU
            "seed": self.seed,
            "max_length": self.max_length,
            **loss,
        }

    def cpu_bf16(self) -> bool:
        """Whether a tune on the CPU runs under bf16 autocast: tune.precision bf16, or auto on a CPU with bf16 units."""
        from jigsaw_kit.methods.embed_backends import BF16_FLAGS, cpu_flags

        return self.options.precision == "bf16" or (self.options.precision == "auto" and bool(cpu_flags() & BF16_FLAGS))

    def run(self, base: Path, rows: pd.DataFrame, out_dir: Path, info: dict[str, Any] | None = None) -> Path:
        """The tuned encoder (a sentence-transformers folder) at out_dir: from the tune cache when it holds this
        tune, else tuned now (and cached unless the deadline cut it short). `info`, when given, receives
        guards.stop_info (whether the deadline stopped the tune early)."""
        data = self.examples(rows)
        cache = tune_cache.TuneCache.here()
        key = cache.key(base, data, self.key_parts()) if cache is not None else None
        if cache is not None and cache.fetch(key, out_dir):
            if info is not None:
                info.update(stopped_early=False, stopped_at_step=None, planned_steps=self.options.steps)
            return out_dir
        stop = self._train(base, data, out_dir)
        if info is not None:
            info.update(stop)
        if cache is not None and not stop["stopped_early"]:  # a cut-short tune is not the tune the key names
            cache.store(key, out_dir)
        return out_dir

    def _train(self, base: Path, data: dict[str, list], out_dir: Path) -> dict[str, Any]:
        """The tune itself, under methods.guards (deadline, nan loss); saves out_dir atomically, returns stop_info."""
        import torch
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from sentence_transformers import SentenceTransformerTrainingArguments as Args

        set_offline()
        o = self.options
        on_gpu = torch.cuda.is_available()
        # local_files_only: sentence-transformers otherwise asks the Hub about the "base model" for its model card
        encoder = SentenceTransformer(str(base), device="cuda" if on_gpu else "cpu", local_files_only=True)
        encoder.max_seq_length = self.max_length
        _freeze_lower(encoder, o.freeze_layers)
        work = Path(tempfile.mkdtemp(prefix="jigsaw-kit-st-"))
        args = Args(
            output_dir=str(work),
            max_steps=o.steps,
            per_device_train_batch_size=o.batch_size,
            learning_rate=o.learning_rate,
            warmup_steps=o.warmup_ratio,  # a float in [0, 1) is a ratio of the steps in transformers 5
            seed=self.seed,
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, o.steps // 4),
            logging_nan_inf_filter=False,  # a nan loss must reach NanLossCallback
            use_cpu=not on_gpu,
            fp16=on_gpu and not torch.cuda.is_bf16_supported(),
            bf16=not on_gpu and self.cpu_bf16(),  # the Trainer's CPU autocast
            dataloader_num_workers=0,
        )
        size = len(next(iter(data.values())))
        log.info("contrastive: tuning %s on %d rule %s, %d steps", Path(base).name, size, o.objective, o.steps)
        guards = training_guards()
        trainer = SentenceTransformerTrainer(
            model=encoder, args=args, train_dataset=Dataset.from_dict(data), loss=_loss(o, encoder), callbacks=guards
        )
        try:
            trainer.train()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        partial = out_dir.with_name(f".{out_dir.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        encoder.save(str(partial), create_model_card=False)  # a model card would be fetched from the Hub
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)  # a crash mid-save never leaves a half encoder under the final name
        # The embedding pass loads the saved encoder on its own: drop the trainer's copy (held in reference
        # cycles, so only the collector frees it) before the 54k-row embedding and TF-IDF passes peak.
        del trainer, encoder
        gc.collect()
        release_freed_heap()  # the Trainer's freed buffers: ~2 GB the embedding pass would otherwise sit on top of
        return stop_info(guards)


def _loss(options: TuneOptions, encoder):
    from sentence_transformers.sentence_transformer.losses import (
        CosineSimilarityLoss,
        TripletDistanceMetric,
        TripletLoss,
    )

    if options.objective == "pairs":
        return CosineSimilarityLoss(encoder)
    # TripletLoss, not MultipleNegativesRankingLoss: with a handful of rules a batch holds each rule's anchor
    # many times, and MNRL would score every other same-rule row's violating comment as a negative of this
    # anchor (it masks no duplicates), contradicting the labels; TripletLoss compares only the row's own pair.
    return TripletLoss(encoder, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=TRIPLET_MARGIN)


def _freeze_lower(encoder, n: int) -> None:
    """Freeze the token embeddings and the lowest n layers: few labels, so tune only the top."""
    if n <= 0:
        return
    backbone = encoder[0].auto_model
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if getattr(backbone, "embeddings", None) is None or layers is None:
        raise KitError(
            f"freeze_layers {n}: {type(backbone).__name__} has no embeddings / encoder.layer to freeze; "
            "set freeze_layers: 0 for this checkpoint."
        )
    for module in [backbone.embeddings, *list(layers)[:n]]:
        for p in module.parameters():
            p.requires_grad = False
