"""One logistic regression per rule over any feature matrix, with an all-rules fallback.

The metric ranks within a rule, so a model per rule is the natural shape (tfidf.py and
hybrid.py both use this). A rule whose training rows hold one class gets that class's rate
(it cannot rank); a rule absent from training is scored by a model over all rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)


class RuleRegressions:
    def __init__(self, make_lr: Callable[[], LogisticRegression], what: str, warn: bool = True):
        self.make_lr, self.what, self.warn = make_lr, what, warn
        self.models: dict[str, LogisticRegression] = {}
        self.constant: dict[str, float] = {}
        self.global_model: LogisticRegression | None = None

    def fit(self, x: Any, y: np.ndarray, rules: pd.Series) -> RuleRegressions:
        self.global_model = self.make_lr().fit(x, y) if len(np.unique(y)) == 2 else None
        for rule, idx in rule_positions(rules).items():
            if len(np.unique(y[idx])) == 2:
                self.models[rule] = self.make_lr().fit(x[idx], y[idx])
            else:
                self.constant[rule] = float(y[idx].mean())
                if self.warn:
                    log.warning(
                        "rule %r has a single class in training (%d rows): its scores will not rank.",
                        rule[:60],
                        len(idx),
                    )
        return self

    def predict(self, x: Any, rules: pd.Series) -> np.ndarray:
        out = np.full(x.shape[0], 0.5)
        for rule, idx in rule_positions(rules).items():
            if rule in self.models:
                out[idx] = self.models[rule].predict_proba(x[idx])[:, 1]
            elif rule in self.constant:
                out[idx] = self.constant[rule]
            elif self.global_model is not None:
                if self.warn:
                    log.warning(
                        "rule %r has no training rows: scoring it with the all-rules %s model.", rule[:60], self.what
                    )
                out[idx] = self.global_model.predict_proba(x[idx])[:, 1]
        return out


def rule_positions(rules: pd.Series) -> dict[str, np.ndarray]:
    """Row positions of each rule (positions, not index labels: rows may come with any index)."""
    return pd.DataFrame({"rule": np.asarray(rules)}).groupby("rule").indices
