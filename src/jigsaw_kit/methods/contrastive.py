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
from jigsaw_kit.methods.embedding.tune import EncoderTune


def recipe_from(cfg: Config) -> EmbeddingRecipe:
    """The hybrid's parts (hybrid.recipe_from) with the tune of the first encoder, by the options' `tune` group
    (methods/options.TuneOptions): the one function that reads the config's keys for the tune."""
    recipe = hybrid.recipe_from(cfg)
    recipe.tune = EncoderTune(cfg.options.tune, seed=cfg.seed, max_length=cfg.options.max_length)
    return recipe


def tune_encoder(cfg: Config, rows: pd.DataFrame, out_dir: Path, info: dict[str, Any] | None = None) -> Path:
    """The config's tune alone: its tuned encoder at out_dir (what fit does first)."""
    recipe = recipe_from(cfg)
    return recipe.tune.run(recipe.encoders[0].path(), rows, Path(out_dir), info=info)


class ContrastiveHybrid(hybrid.HybridRuleModel):
    name = "contrastive"
    old_file: ClassVar[str] = "contrastive.joblib"
    # the tune is a SentenceTransformer's
    modules = (*hybrid.HybridRuleModel.modules, "datasets", "sentence_transformers")

    @classmethod
    def recipe_from(cls, cfg: Config) -> EmbeddingRecipe:
        return recipe_from(cfg)

    @classmethod
    def step_cap(cls, cfg: Config, steps: int) -> dict[str, Any]:
        return {"tune.steps": steps}

    @classmethod
    def tune_steps(cls, cfg: Config) -> int:
        return cfg.options.tune.steps
