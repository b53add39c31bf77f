"""The embedding recipe: the parts of `hybrid` and `contrastive`, and the order they run in.

    fit:     [tune the first encoder] -> fit the heads -> [pseudo-label the rows to predict, fit the heads
             again on both] -> fit the lookup on the training rows
    predict: score with the heads -> apply the lookup

A row's score is tfidf_weight x the TF-IDF head's + the rest x the mean over encoders of each encoder's
head (the config's `model` first). Each part takes its own parameters (hybrid.recipe_from maps a config to
them); this module only puts them in sequence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embedding.encoders import FrozenEncoder
from jigsaw_kit.methods.embedding.heads import EncoderHead, TfidfHead
from jigsaw_kit.methods.embedding.lookup import ExactLookup
from jigsaw_kit.methods.embedding.pseudo import PseudoLabels
from jigsaw_kit.methods.embedding.tune import EncoderTune

log = logging.getLogger(__name__)


@dataclass
class EmbeddingRecipe:
    tfidf: TfidfHead
    encoders: list[FrozenEncoder]  # the config's `model` first (tuned, when `tune` is set), then `encoders`
    heads: list[EncoderHead]  # one per encoder
    tfidf_weight: float  # the TF-IDF head's share; the encoders' mean gets the rest
    lookup: ExactLookup | None = None  # None: off
    pseudo: PseudoLabels | None = None  # None: no pseudo-label round
    tune: EncoderTune | None = None  # tunes encoders[0] before the heads are fitted
    tuned: bool = False  # encoders[0] is a tune's output: saved inside the run folder

    def __post_init__(self) -> None:
        if len(self.encoders) != len(self.heads):
            raise ValueError(f"{len(self.encoders)} encoders but {len(self.heads)} heads: one head per encoder")

    def fit(
        self,
        rows: pd.DataFrame,
        work_dir: Path,
        unlabelled: pd.DataFrame | None = None,
        info: dict[str, Any] | None = None,
    ) -> EmbeddingRecipe:
        """Fit every part on labelled rows; unlabelled: the rows predict will score (the pseudo-label round's)."""
        if self.pseudo is not None and unlabelled is None:
            raise KitError(
                "pseudo_share > 0 pseudo-labels the rows to be predicted at fit, but fit was given none: train "
                "with `jigsaw-kit run` or `train` (they pass the test rows), or set pseudo_share: 0."
            )
        if self.tune is not None:
            base = self.encoders[0].path()
            tuned = self.tune.run(base, rows, Path(work_dir) / "encoder", info=info)
            self.encoders[0], self.tuned = self.encoders[0].at(tuned), True
        self.encoders = [e.pinned() for e in self.encoders]
        for e in self.encoders[1:]:
            log.info("embedding recipe: extra encoder %s (%s)", e.checkpoint, e.fitted_at)
        self.fit_heads(rows)
        if self.pseudo is not None and len(unlabelled):
            extra = self.pseudo.pick(rows, unlabelled, self.scores(unlabelled))
            log.info("pseudo-labels: %d rows over %d rules", len(extra), extra["rule"].nunique())
            if len(extra):  # else nothing to learn from: the first heads stand
                labelled = rows[["rule", "text", "label"]].reset_index(drop=True)
                self.fit_heads(pd.concat([labelled, extra], ignore_index=True))
        if self.lookup is not None:
            self.lookup.fit(rows)
        return self

    def fit_heads(self, rows: pd.DataFrame) -> None:
        """The TF-IDF head and each encoder's head (not the lookup), on these labelled rows."""
        y, rules = rows["label"].to_numpy(), rows["rule"]
        self.tfidf.fit(rows["text"], y, rules)
        for encoder, head in zip(self.encoders, self.heads):
            path = encoder.path()
            x = encoder.embed(rows["text"], path)  # the texts, then the rule texts: the embedding cache's order
            head.fit(x, y, rules, encoder.rule_vectors(rules, path) if head.centroid_features else None)

    def embedding_scores(self, rows: pd.DataFrame) -> np.ndarray:
        """The mean over encoders of each one's head score; one encoder gives its head's score as it is."""
        scores, rules = [], rows["rule"]
        for encoder, head in zip(self.encoders, self.heads):
            path = encoder.path()
            x = encoder.embed(rows["text"], path)
            scores.append(head.score(x, rules, encoder.rule_vectors(rules, path) if head.centroid_features else None))
        return scores[0] if len(scores) == 1 else np.mean(scores, axis=0)

    def scores(self, rows: pd.DataFrame) -> np.ndarray:
        """The heads' blend, before the lookup."""
        w = self.tfidf_weight
        return w * self.tfidf.score(rows["text"], rows["rule"]) + (1 - w) * self.embedding_scores(rows)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        p = self.scores(rows)
        return p if self.lookup is None else self.lookup.apply(rows, p)
