"""TF-IDF + logistic regression baseline, one model per rule.

The metric ranks within a rule, so one classifier per rule is the natural shape; a rule seen
at prediction time but absent from the training rows falls back to a model over all rules,
and says so. Seconds on CPU: the yardstick every fine-tune must beat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jigsaw_kit.methods.base import FittedMethod
from jigsaw_kit.methods.embedding.heads import TfidfHead


class TfidfRuleModel(FittedMethod):
    name = "tfidf-lr"
    file = "tfidf.joblib"
    uses_model = False
    gpu = "none"
    modules = ("yaml", "sklearn")

    def fit(
        self,
        rows: pd.DataFrame,
        work_dir: Path | None = None,
        resume_from: Path | None = None,
        unlabelled: pd.DataFrame | None = None,
    ) -> TfidfRuleModel:
        # the embedding recipe's TF-IDF head is this baseline: one implementation serves both
        self.head = TfidfHead(self.cfg.options.tfidf_max_features, self.cfg.options.tfidf_c, self.cfg.seed)
        self.head.fit(rows["text"], rows["label"].to_numpy(), rows["rule"])
        return self

    def predict(self, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
        return self.head.score(rows["text"], rows["rule"])
