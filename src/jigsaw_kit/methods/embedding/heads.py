"""Per-rule heads: what turns features of a rule's labelled rows into a score for its other rows.

- TfidfHead: TF-IDF word + char n-grams, one logistic regression per rule (the spam and legal words);
- EncoderHead: on one encoder's embeddings, one logistic regression per rule (a fixed C, or a C grid:
  GridLR), optionally beside 4 centroid features (RuleCentroids) and mixed with a cosine kNN (CappedKnn).

Each takes its parameters in its constructor; fit(features, y, rules) then score(features, rules).
Why per rule, and the all-rules fallback for an unseen rule: rulewise.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.neighbors import KNeighborsClassifier

from jigsaw_kit.methods.rulewise import RuleRegressions, rule_positions

log = logging.getLogger(__name__)


class TfidfHead:
    """Word (1-2) and char_wb (2-5) TF-IDF, sublinear tf, each capped at max_features; per-rule LR at C."""

    def __init__(self, max_features: int, c: float, seed: int) -> None:
        self.max_features, self.c, self.seed = max_features, c, seed

    def _features(self, texts: pd.Series, fit: bool = False) -> Any:
        if fit:
            self.word = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=self.max_features)
            self.char = TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=self.max_features
            )
            char = self.char.fit_transform(texts)
            try:
                return hstack([self.word.fit_transform(texts), char]).tocsr()
            except ValueError:
                # No text has a word of 2+ letters (only emoji, punctuation, 1-letter words): sklearn
                # refuses an empty vocabulary. Character n-grams always exist for non-empty text.
                log.warning("no word features in the training texts: TF-IDF uses character n-grams only.")
                self.word = None
                return char.tocsr()
        if self.word is None:
            return self.char.transform(texts).tocsr()
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    def regression(self) -> LogisticRegression:
        """One rule's (or the all-rules fallback's) regression on the TF-IDF features."""
        return LogisticRegression(C=self.c, max_iter=2000, random_state=self.seed)

    def fit(self, texts: pd.Series, y: np.ndarray, rules: pd.Series) -> TfidfHead:
        self.rules = RuleRegressions(self.regression, "TF-IDF").fit(self._features(texts, fit=True), y, rules)
        return self

    def score(self, texts: pd.Series, rules: pd.Series) -> np.ndarray:
        return self.rules.predict(self._features(texts), rules)


class GridLR:
    """A per-rule LR whose C is picked from a grid by 3-fold stratified AUC; a rule with fewer than 3 rows
    of a class cannot fill every fold with both classes, so it gets the plain LR at c."""

    def __init__(self, grid: list[float], c: float, seed: int) -> None:
        self.grid, self.c, self.seed = list(grid), c, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> GridLR:
        if np.unique(y, return_counts=True)[1].min() >= 3:
            # l1_ratios/use_legacy_attributes: sklearn 1.8's values, set so it does not warn on every rule
            self.model = LogisticRegressionCV(
                Cs=self.grid,
                cv=3,
                scoring="roc_auc",
                max_iter=3000,
                random_state=self.seed,
                l1_ratios=(0.0,),
                use_legacy_attributes=False,
            )
        else:
            self.model = LogisticRegression(C=self.c, max_iter=3000, random_state=self.seed)
        self.model.fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)


def embedding_lr(c: float, seed: int, grid: list[float] | None = None) -> Callable[[], Any]:
    """The per-rule LR factory of an embedding head: C fixed, or picked from grid (GridLR). A partial, not a
    lambda: it is pickled with the fitted head."""
    if grid:
        return partial(GridLR, list(grid), c, seed)
    return partial(LogisticRegression, C=c, max_iter=3000, random_state=seed)


class CappedKnn:
    """Distance-weighted cosine kNN over min(k, rows) neighbours: a small rule has fewer rows than k."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, x: np.ndarray, y: np.ndarray) -> CappedKnn:
        self.model = KNeighborsClassifier(n_neighbors=min(self.k, len(y)), weights="distance", metric="cosine")
        self.model.fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)


def _cosines(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Row-wise cosine of x with c (one vector or one per row); 0 against a zero vector (no such rows)."""
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(c, axis=-1)
    dots = (x * c).sum(axis=1)
    return np.divide(dots, norms, out=np.zeros(len(x)), where=norms > 0)


class RuleCentroids:
    """Per rule, the sum of its violating (1) and of its compliant (0) training embeddings; a cosine to a sum is
    the cosine to the centroid. Pooled over all rules for a rule unseen at fit (scored by the all-rules LR)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rules: pd.Series) -> None:
        x = x.astype(np.float64)
        self.sums = {
            rule: (x[idx][y[idx] == 1].sum(axis=0), x[idx][y[idx] == 0].sum(axis=0))
            for rule, idx in rule_positions(rules).items()
        }
        self.pooled = (x[y == 1].sum(axis=0), x[y == 0].sum(axis=0))

    def features(
        self, x: np.ndarray, rules: pd.Series, rule_vecs: dict[str, np.ndarray], y: np.ndarray | None = None
    ) -> np.ndarray:
        """(rows, 4): cosine to the positive centroid, to the negative, their difference, cosine to the rule text.
        y (at fit only): leave each row out of its own class's centroid. Otherwise a training row always sits
        near its own centroid, most in small rules, and the LR would trust the feature more than it earns on
        new rows."""
        out = np.zeros((len(x), 4))
        for rule, idx in rule_positions(rules).items():
            xr = x[idx].astype(np.float64)
            pos, neg = self.sums.get(rule, self.pooled)
            if y is not None:  # one centroid per row; exactly 0 for its class's only row, so cosine 0
                own = (y[idx] == 1)[:, None]
                pos, neg = pos - xr * own, neg - xr * ~own
            out[idx, 0], out[idx, 1] = _cosines(xr, pos), _cosines(xr, neg)
            out[idx, 3] = _cosines(xr, rule_vecs[rule])
        out[:, 2] = out[:, 0] - out[:, 1]
        return out


class EncoderHead:
    """One encoder's per-rule members: the LR (on the embedding, beside its centroid features when
    centroid_features) and, when knn_k > 0, a kNN whose share of the score is knn_weight. The kNN keeps the
    bare embedding: its cosine metric is for those. rule_vecs: the rule texts embedded by the same encoder,
    needed (and only read) with centroid features."""

    def __init__(
        self, make_lr: Callable[[], Any], knn_k: int = 0, knn_weight: float = 0.5, centroid_features: bool = False
    ) -> None:
        self.make_lr, self.knn_k, self.knn_weight = make_lr, knn_k, knn_weight
        self.centroid_features = centroid_features
        self.centroids: RuleCentroids | None = None
        self.knn: RuleRegressions | None = None

    def _features(
        self, x: np.ndarray, rules: pd.Series, rule_vecs: dict[str, np.ndarray] | None, y: np.ndarray | None = None
    ) -> np.ndarray:
        if self.centroids is None:
            return x
        return np.hstack([x, self.centroids.features(x, rules, rule_vecs or {}, y)])

    def fit(
        self, x: np.ndarray, y: np.ndarray, rules: pd.Series, rule_vecs: dict[str, np.ndarray] | None = None
    ) -> EncoderHead:
        # warn=False: the TF-IDF head warns about single-class and unseen rules already
        self.centroids = RuleCentroids(x, y, rules) if self.centroid_features else None
        self.lr = RuleRegressions(self.make_lr, "embedding", warn=False).fit(
            self._features(x, rules, rule_vecs, y), y, rules
        )
        if self.knn_k > 0:
            self.knn = RuleRegressions(partial(CappedKnn, self.knn_k), "kNN", warn=False).fit(x, y, rules)
        else:
            self.knn = None
        return self

    def score(self, x: np.ndarray, rules: pd.Series, rule_vecs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        p = self.lr.predict(self._features(x, rules, rule_vecs), rules)
        if self.knn is None:
            return p
        return (1 - self.knn_weight) * p + self.knn_weight * self.knn.predict(x, rules)
