"""TF-IDF + logistic regression baseline, one model per rule.

The metric ranks within a rule, so one classifier per rule is the natural shape; a rule seen
at prediction time but absent from the training rows falls back to a model over all rules,
and says so. Seconds on CPU: the yardstick every fine-tune must beat.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from jigsaw_kit.methods.base import FittedMethod
from jigsaw_kit.methods.rulewise import RuleRegressions

log = logging.getLogger(__name__)


class TfidfRuleModel(FittedMethod):
    name = "tfidf-lr"
    file = "tfidf.joblib"
    uses_model = False
    gpu = "none"
    modules = ("yaml", "sklearn")

    def _features(self, texts: pd.Series, fit: bool = False):
        if fit:
            most = self.cfg.options.tfidf_max_features
            self.word = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=most)
            self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=most)
            char = self.char.fit_transform(texts)
            try:
                return hstack([self.word.fit_transform(texts), char]).tocsr()
            except ValueError:
                # No text has a word of 2+ letters (only emoji, punctuation, 1-letter words): sklearn
                # refuses an empty vocabulary. Character n-grams always exist for non-empty text.
                log.warning("no word features in the training texts: TF-IDF uses character n-grams only.")
                self.word = None
                return char.tocsr()
        if getattr(self, "word", None) is None:
            return self.char.transform(texts).tocsr()
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    def _lr(self) -> LogisticRegression:
        return LogisticRegression(C=self.cfg.options.tfidf_c, max_iter=2000, random_state=self.cfg.seed)

    def fit(
        self,
        rows: pd.DataFrame,
        work_dir: Path | None = None,
        resume_from: Path | None = None,
        unlabelled: pd.DataFrame | None = None,
    ) -> TfidfRuleModel:
        x = self._features(rows["text"], fit=True)
        self.rules = RuleRegressions(self._lr, "TF-IDF").fit(x, rows["label"].to_numpy(), rows["rule"])
        return self

    def predict(self, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
        return self.rules.predict(self._features(rows["text"]), rows["rule"])
