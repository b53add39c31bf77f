"""The pseudo-label round (11th place on Kaggle): the rows to be predicted, labelled by the first fit's scores.

Per rule, the top `share` of the rows not labelled at fit become violations and the bottom share compliant;
the heads are fitted again on the training rows plus these. It runs once, at fit, on the rows fit is given
to predict (`unlabelled`); predict never refits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jigsaw_kit.methods.embedding.lookup import row_keys


class PseudoLabels:
    def __init__(self, share: float) -> None:
        if not 0 < share < 0.5:
            raise ValueError(f"pseudo-label share must be in (0, 0.5), got {share}")
        self.share = share

    def pick(self, labelled: pd.DataFrame, rows: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
        """Per rule, of the rows whose (rule, text) is not in `labelled` (a repeated text counted once), the
        top share by score labelled 1 and the bottom share 0. Rounded down, so top and bottom never overlap
        and a rule with fewer than 1/share such rows gives none. Reads no label of `rows`."""
        known = set(row_keys(labelled))
        frame = pd.DataFrame(
            {"rule": rows["rule"].to_numpy(), "text": rows["text"].to_numpy(), "score": scores, "key": row_keys(rows)}
        )
        frame = frame[~frame["key"].isin(known)].drop_duplicates("key")
        picked = []
        for _, group in frame.groupby("rule", sort=False):
            k = int(self.share * len(group) + 1e-9)  # the epsilon: 0.1 * 30 must not floor to 2
            if k == 0:
                continue
            ranked = group.sort_values("score", kind="stable")
            picked += [ranked.tail(k).assign(label=1), ranked.head(k).assign(label=0)]
        if not picked:
            return pd.DataFrame({"rule": [], "text": [], "label": []}).astype({"label": int})
        return pd.concat(picked, ignore_index=True)[["rule", "text", "label"]]
