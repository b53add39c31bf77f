"""The exact lookup: a text already labelled under its rule at fit takes that label at predict.

An example's role matches the body's own label 99% of the time in train.csv, so a labelled (rule, text) is
put at the top (positives) or bottom (negatives) of its rule, ranked among its peers by the model's score.
Saved as hashed keys: the run folder holds which (rule, text) pairs were labelled, not their texts.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError

log = logging.getLogger(__name__)

# Where lookup-labelled texts land: positives above every unmatched text, negatives below.
BAND = 0.1
_SPACE = re.compile(r"\s+")


def lookup_key(rule: str, text: str) -> tuple[str, str]:
    """Case- and whitespace-insensitive identity of a (rule, text) pair."""
    return _SPACE.sub(" ", str(rule)).strip().casefold(), _SPACE.sub(" ", str(text)).strip().casefold()


def row_keys(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """lookup_key of each row, in order."""
    return [lookup_key(r, t) for r, t in zip(rows["rule"], rows["text"])]


def digest(key: tuple[str, str]) -> str:
    # 128 bits: no two of a few million keys collide; the unit separator cannot occur inside a normalised rule
    return hashlib.sha256(f"{key[0]}\x1f{key[1]}".encode()).hexdigest()[:32]


class ExactLookup:
    """(rule, text) -> label of the rows seen at fit; apply() moves those rows into the outer bands."""

    def __init__(self, labels: dict[str, int] | None = None) -> None:
        self.labels: dict[str, int] = dict(labels or {})  # digest of the lookup key -> 0/1

    def fit(self, rows: pd.DataFrame) -> ExactLookup:
        # a later row of the same key wins, as a dict built in row order gives
        self.labels = {digest(k): int(v) for k, v in zip(row_keys(rows), rows["label"].to_numpy())}
        return self

    def found(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's label at fit, -1 where its (rule, text) was not labelled."""
        return np.array([self.labels.get(digest(k), -1) for k in row_keys(rows)], dtype=int)

    def apply(self, rows: pd.DataFrame, p: np.ndarray) -> np.ndarray:
        """Labelled positives into [1 - BAND, 1], negatives into [0, BAND], the rest between, order kept."""
        if not self.labels:
            return p
        found = self.found(rows)
        log.info("lookup: %d of %d texts are labelled under their rule already", int((found >= 0).sum()), len(rows))
        return np.where(found == 1, 1 - BAND + BAND * p, np.where(found == 0, BAND * p, BAND + (1 - 2 * BAND) * p))

    def to_json(self) -> dict[str, Any]:
        return {"positives": sorted(k for k, v in self.labels.items() if v == 1),
                "negatives": sorted(k for k, v in self.labels.items() if v == 0)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any, where: Path) -> ExactLookup:
        try:
            labels = {str(k): 1 for k in data["positives"]} | {str(k): 0 for k in data["negatives"]}
        except (KeyError, TypeError):
            raise KitError(f"{where} is not a saved lookup (positives/negatives): train again.") from None
        return cls(labels)
