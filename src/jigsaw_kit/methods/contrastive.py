"""`method: contrastive`: the hybrid (hybrid.py) on a sentence encoder first tuned SetFit-style.

    jigsaw-kit cv --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-contrastive --scheme lb-proxy

What the fast Kaggle winners did: one encoder for all rules, tuned on the labelled rows (pairs or rule-anchored
triplets: embedding/tune.py), then per-rule heads on its embeddings: the hybrid's (per-rule logistic
regressions on the tuned embeddings and on TF-IDF, averaged, plus the exact lookup). The tuned encoder is
saved in the run folder (encoder/) and kept in the tune cache (embedding/tune_cache.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from jigsaw_kit.core.config import Config
from jigsaw_kit.methods import hybrid
from jigsaw_kit.methods.embedding.recipe import EmbeddingRecipe
from jigsaw_kit.methods.embedding.tune import EncoderTune, TuneOptions

DEFAULT_STEPS = 20  # max_steps <= 0 (a fine-tune's "use epochs") means the tune's usual budget


def recipe_from(cfg: Config) -> EmbeddingRecipe:
    """The hybrid's parts (hybrid.recipe_from) with the tune of the first encoder: the one function that reads the
    config's keys for the tune."""
    recipe = hybrid.recipe_from(cfg)
    options = TuneOptions(
        steps=cfg.max_steps if cfg.max_steps > 0 else DEFAULT_STEPS,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_ratio=cfg.warmup_ratio,
        freeze_layers=cfg.freeze_layers,
        objective=cfg.tune_objective,
        negated_rules=cfg.negated_rules,
    )
    recipe.tune = EncoderTune(options, seed=cfg.seed, max_length=cfg.max_length)
    return recipe


def tune_encoder(cfg: Config, rows: pd.DataFrame, out_dir: Path, info: dict[str, Any] | None = None) -> Path:
    """The config's tune alone: its tuned encoder at out_dir (what fit does first)."""
    recipe = recipe_from(cfg)
    return recipe.tune.run(recipe.encoders[0].path(), rows, Path(out_dir), info=info)


class ContrastiveHybrid(hybrid.HybridRuleModel):
    name = "contrastive"
    old_file: ClassVar[str] = "contrastive.joblib"
    stepped = True  # the encoder tune: a fixed number of steps (a smoke run cuts them)
    # the tune is a SentenceTransformer's
    modules = (*hybrid.HybridRuleModel.modules, "datasets", "sentence_transformers")

    @classmethod
    def recipe_from(cls, cfg: Config) -> EmbeddingRecipe:
        return recipe_from(cfg)
