"""The notebook's first cell (kaggle/safety_net.py): a checked submission before pip, and the rerun policy.

    .venv/bin/python -m pytest -q tests/kaggle/test_safety_net.py

The cell is the module's source pasted into the notebook; here it runs in-process on a fake /kaggle. The same cell
in the real notebook, on Python 3.12 with a broken bundle or bad data, is rehearsed in
tests/kaggle/test_kaggle_py312.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.config import load_config
from jigsaw_kit.data import dataset
from jigsaw_kit.data.competition import load_competition
from jigsaw_kit.kaggle import safety_net as sn
from jigsaw_kit.kaggle.stages import drops_failures
from jigsaw_kit.methods import create

from ..conftest import REAL, ROOT, SAMPLE, kaggle_tree

COMP = "jigsaw-agile-community-rules"


def _kit_tfidf(data_dir: Path) -> pd.Series:
    cfg = load_config("tfidf-lr")
    processed = dataset.build(load_competition(data_dir), cfg)
    preds = create(cfg).fit(processed.train).predict(processed.test)
    return pd.Series(preds, index=processed.test["row_id"].astype("int64"))


@pytest.mark.parametrize("where", ["sample", "real"])
def test_first_cell_writes_the_kit_s_tfidf_lr_submission(tmp_path, where):
    src = SAMPLE if where == "sample" else REAL
    if not (src / "train.csv").is_file():
        pytest.skip(f"{src} is not here")
    inp, working = kaggle_tree(tmp_path, src)
    lines: list[str] = []
    net = sn.first_submission(inp, working, {}, out=lines.append)
    assert net.ok and not net.keep_going and "TF-IDF per rule" in net.source and "written in" in lines[0]
    sub = pd.read_csv(working / "submission.csv")
    sample = pd.read_csv(src / "sample_submission.csv")
    assert sub.columns.tolist() == ["row_id", "rule_violation"] and sub["row_id"].tolist() == sample["row_id"].tolist()
    # the same recipe as the kit's tfidf-lr (0.831 on lb-proxy), rows in the same order: the same predictions
    kit = _kit_tfidf(src)
    np.testing.assert_allclose(sub["rule_violation"].to_numpy(), kit.loc[sub["row_id"]].to_numpy(), atol=1e-9)


def test_labelled_rows_match_the_kit_s_melt_and_dedup():
    train, test = (pd.read_csv(SAMPLE / f, dtype=str, keep_default_na=False) for f in ("train.csv", "test.csv"))
    rows = sn.labelled_rows(train, test)
    processed = dataset.build(load_competition(SAMPLE), load_config("tfidf-lr"))
    kit = processed.train[["rule", "text", "label"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, kit, check_dtype=False)


@pytest.mark.parametrize(
    ("rerun", "test_rows", "run_type", "on_failure", "keeps"),
    [
        (True, 10, "Batch", "auto", True),  # Kaggle's flag: the hidden rerun
        (False, 10, "Batch", "auto", False),  # "Save Version"'s preview: fail loudly
        (False, 54_059, "Batch", "auto", True),  # the flag missing, a hidden-size test file
        (False, 54_059, "Interactive", "auto", False),  # the editor: the user is watching
        (False, None, "Batch", "auto", False),  # test.csv unreadable and no flag: not known to be the rerun
        (True, 10, "Batch", "fail", False),
        (False, 10, "Interactive", "drop", True),
    ],
)
def test_one_policy_for_the_cells_and_the_members(rerun, test_rows, run_type, on_failure, keeps):
    assert sn.keeps_going(rerun, test_rows, run_type, on_failure) is keeps
    settings = kk.NotebookSettings(rerun=rerun, run_type=run_type, on_failure=on_failure)
    if test_rows is not None:
        assert drops_failures(settings, test_rows) is keeps  # the kit asks the same function


def test_a_failing_stage_falls_back_on_the_rerun_and_raises_elsewhere():
    lines: list[str] = []
    net = sn.Net(keep_going=True, out=lines.append)
    net.source = "the safety net"
    with net.stage("install"):
        raise RuntimeError("pip install failed with status 1")
    assert not net.ok and lines[1].startswith("FALLBACK: the install stage failed, so the later stages are skipped")
    assert "RuntimeError: pip install failed" in lines[1] and "the safety net" in lines[1]
    assert "1 fallback(s)" in net.summary()
    with pytest.raises(RuntimeError):
        with sn.Net(keep_going=False, out=lines.append).stage("install"):
            raise RuntimeError("pip install failed")


def test_unreadable_data_leaves_a_constant_submission_on_the_rerun_and_fails_the_preview(tmp_path):
    inp, working = kaggle_tree(tmp_path)
    (inp / "competitions" / COMP / "test.csv").write_text("not,a,competition\nfile,at,all\n")
    lines: list[str] = []
    net = sn.first_submission(inp, working, {"KAGGLE_IS_COMPETITION_RERUN": "True"}, out=lines.append)
    assert net.ok and "constant 0.5" in net.source and any(x.startswith("FALLBACK: the safety net's") for x in lines)
    sub = pd.read_csv(working / "submission.csv")
    assert sub["row_id"].tolist() == pd.read_csv(SAMPLE / "sample_submission.csv")["row_id"].tolist()
    assert (sub["rule_violation"] == 0.5).all()
    (working / "submission.csv").unlink()
    with pytest.raises(KeyError):
        sn.first_submission(inp, working, {}, out=lines.append)
    assert not (working / "submission.csv").exists()


def test_bad_labels_and_empty_cells_the_kit_refuses_still_give_a_ranking_submission(tmp_path):
    # The kit's validation refuses rule_violation 2 and an empty train body; the first cell must still rank.
    inp, working = kaggle_tree(tmp_path)
    train = pd.read_csv(SAMPLE / "train.csv", dtype=str, keep_default_na=False)
    train.loc[0, "rule_violation"], train.loc[1, "body"] = "2", ""
    train.to_csv(inp / "competitions" / COMP / "train.csv", index=False)
    net = sn.first_submission(inp, working, {"KAGGLE_IS_COMPETITION_RERUN": "1"}, out=lambda s: None)
    assert net.ok and "TF-IDF" in net.source
    sub = pd.read_csv(working / "submission.csv").merge(pd.read_csv(SAMPLE / "test.csv")[["row_id", "rule"]])
    assert (sub.groupby("rule")["rule_violation"].nunique() > 1).all()


def test_import_check_names_what_does_not_import():
    got = sn.import_check(("json", "no_such_module_xyz"))
    assert got["json"] is None and got["no_such_module_xyz"].startswith("ModuleNotFoundError")


def test_the_notebook_s_first_cell_is_this_module_and_imports_nothing_of_the_kit():
    import nbformat

    nb = nbformat.read(ROOT / "kernel" / "jigsaw-kit-submit.ipynb", as_version=4)
    first = nb.cells[1].source
    assert Path(sn.__file__).read_text(encoding="utf-8").rstrip() in first and first.rstrip().endswith("first_cell()")
    assert "jigsaw_kit" not in "".join(x for x in first.splitlines() if x.lstrip().startswith(("import", "from")))
    # it runs in a bare interpreter with only pandas, numpy and scikit-learn: no kit on the path
    code = "import sys; sys.path = [p for p in sys.path if 'src' not in p]\n" + first.replace("NET = first_cell()", "")
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
