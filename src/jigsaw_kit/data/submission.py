"""Write submission.csv: the rows and order of sample_submission.csv, finite values in [0, 1].

Checked before writing and written atomically (temp file + rename), so a crash never leaves a
half-written submission that looks complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import _check_ids, finite_column, read_csv_checked

READ_FIX = "pass a submission CSV a kit command wrote (row_id, rule_violation)"


def read_submission(path: Path) -> pd.DataFrame:
    """A submission file an earlier command wrote, checked: exactly row_id (unique integers) and rule_violation
    (finite numbers), with rows. blend and `hidden-test --score` read submissions through it."""
    path = Path(path)
    if not path.is_file():
        raise KitError(f"{path} not found (or not a file): {READ_FIX}.")
    sub = read_csv_checked(path, READ_FIX)
    if list(sub.columns) != ["row_id", "rule_violation"]:
        raise KitError(f"{path}: expected columns ['row_id', 'rule_violation'], got {list(sub.columns)[:6]}.")
    ids = _check_ids(sub, path)
    return pd.DataFrame({"row_id": ids, "rule_violation": finite_column(sub, "rule_violation", path, READ_FIX)})


def make_submission(row_ids: pd.Series, preds: np.ndarray, sample: pd.DataFrame) -> pd.DataFrame:
    """Align predictions to sample_submission's row order and check them."""
    preds = np.asarray(preds, dtype=float)
    if len(preds) != len(row_ids):
        raise KitError(f"internal: {len(preds)} predictions for {len(row_ids)} test rows.")
    by_id = pd.Series(preds, index=pd.Index(row_ids.astype("int64"), name="row_id"))
    missing = sorted(set(sample["row_id"]) - set(by_id.index))
    if missing:
        raise KitError(f"no prediction for row_id(s) {missing[:5]} of sample_submission.csv; rebuild the dataset.")
    sub = pd.DataFrame({"row_id": sample["row_id"].astype("int64").to_numpy()})
    sub["rule_violation"] = by_id.loc[sub["row_id"]].to_numpy()
    check_submission(sub, sample)
    return sub


def check_submission(sub: pd.DataFrame, sample: pd.DataFrame) -> None:
    if list(sub.columns) != ["row_id", "rule_violation"]:
        raise KitError(f"submission columns must be ['row_id', 'rule_violation'], got {list(sub.columns)}.")
    if list(sub["row_id"]) != list(sample["row_id"]):
        raise KitError("submission row_ids differ from sample_submission.csv (ids or order).")
    v = sub["rule_violation"].to_numpy(dtype=float)
    bad = ~np.isfinite(v) | (v < 0) | (v > 1)
    if bad.any():
        raise KitError(
            f"submission has {int(bad.sum())} values that are not finite probabilities in [0, 1], "
            f"e.g. row_id {sub.loc[bad, 'row_id'].iloc[0]}."
        )
