import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.atomic import write_csv
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.submission import make_submission


def test_submission_follows_sample_order():
    sample = pd.DataFrame({"row_id": [3, 1, 2], "rule_violation": 0.5})
    sub = make_submission(pd.Series([1, 2, 3]), np.array([0.1, 0.2, 0.3]), sample)
    assert sub["row_id"].tolist() == [3, 1, 2]
    assert sub["rule_violation"].tolist() == [0.3, 0.1, 0.2]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.1, 1.5])
def test_rejects_values_outside_probabilities(bad):
    sample = pd.DataFrame({"row_id": [1, 2], "rule_violation": 0.5})
    with pytest.raises(KitError, match="not finite probabilities"):
        make_submission(pd.Series([1, 2]), np.array([0.5, bad]), sample)


def test_rejects_missing_rows():
    sample = pd.DataFrame({"row_id": [1, 2], "rule_violation": 0.5})
    with pytest.raises(KitError, match="no prediction for row_id"):
        make_submission(pd.Series([1, 5]), np.array([0.5, 0.5]), sample)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "submission.csv"
    write_csv(pd.DataFrame({"a": [1]}), path)

    class Boom:
        columns = ["a"]

        def to_csv(self, f, index=False):
            f.write("a\npartial")
            raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_csv(Boom(), path)
    assert path.read_text() == "a\n1\n"
    assert list(tmp_path.iterdir()) == [path]


def test_outputs_get_ordinary_file_permissions(tmp_path):
    # mkstemp's 0600 would make a submission unreadable to anyone else on a shared machine
    import os
    import stat

    from jigsaw_kit.core.atomic import atomic_path

    p = atomic_path(tmp_path / "out.txt", lambda t: t.write_text("x"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
