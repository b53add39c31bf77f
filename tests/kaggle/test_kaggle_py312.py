"""The notebook on Python 3.12, the interpreter of Kaggle's image (Kaggle/docker-python 4ae73d1), on the hidden rerun.

    make setup   # once: .kaggle/py312 (the stand-in image) and .kaggle/wheels (the bundle's wheels, 3.11-3.13)
    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_py312.py

The stand-in image is a Python 3.12 venv holding what the kit assumes of Kaggle's image minus torch
(kernel/image-py312.txt). PyPI's torch wheels for Linux 3.12 are CUDA builds of several GB, so here the install,
the safety net and the torch-free path are rehearsed; the torch members are rehearsed on 3.11
(tests/kaggle/test_kaggle_rehearsal.py). Every run is the rerun (KAGGLE_IS_COMPETITION_RERUN): nobody watches it, so it
must end with a valid submission.csv and no exception, whatever breaks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from jigsaw_kit import __version__
from jigsaw_kit.kaggle import safety_net as sn
from jigsaw_kit.kaggle.bundling import installs_on

from ..conftest import ROOT, SAMPLE, kaggle_tree
from .test_kaggle_rehearsal import COMP, _simulated_image, rehearse

pytestmark = [pytest.mark.slow, pytest.mark.kaggle]
IMAGE = ROOT / ".kaggle" / "py312"
WHEELS = ROOT / ".kaggle" / "wheels"
# numpy, pandas, scikit-learn and what they and ipykernel (which runs the cells) require: the "bare" image.
BARE = ("numpy", "pandas", "scikit-learn", "ipykernel")
RERUN = {"KAGGLE_IS_COMPETITION_RERUN": "True"}


def _python312() -> Path:
    py = IMAGE / "bin" / "python"
    if not py.is_file() or not (IMAGE / ".installed").is_file():
        pytest.fail(f"{IMAGE} is missing: run `make setup` (it builds the Python 3.12 stand-in of Kaggle's image)")
    return py


def _site(py: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def _closure(py: Path, roots: tuple[str, ...]) -> set[str]:
    """roots and everything they require, by the 3.12 venv's own metadata."""
    code = (
        "import re, sys, importlib.metadata as m\n"
        "todo, seen = sys.argv[1:], set()\n"
        "while todo:\n"
        "    n = re.sub(r'[-_.]+', '-', todo.pop()).lower()\n"
        "    if n in seen: continue\n"
        "    seen.add(n)\n"
        "    try: reqs = m.requires(n) or []\n"
        "    except m.PackageNotFoundError: continue\n"
        "    todo += [re.split(r'[ ;<>=!~\\[(]', r, maxsplit=1)[0] for r in reqs if 'extra ==' not in r]\n"
        "print('\\n'.join(sorted(seen)))"
    )
    out = subprocess.run([str(py), "-c", code, *roots], capture_output=True, text=True, check=True).stdout
    return set(out.split()) | {"pip"}


def _fake_kaggle(tmp_path: Path, train: pd.DataFrame | None = None) -> tuple[Path, Path, Path]:
    """(input, working, wheels dataset): the competition, and the bundle built from .kaggle/wheels."""
    inp, working = kaggle_tree(tmp_path / "kaggle")
    if train is not None:
        train.to_csv(inp / "competitions" / COMP / "train.csv", index=False)
    if not (WHEELS / ".done").is_file():
        pytest.fail(f"{WHEELS} is missing: run `make setup` (it downloads the bundle's wheels)")
    args = ["bundle", "--model", str(ROOT / "weights" / "all-MiniLM-L6-v2"), "--out", str(inp / "datasets" / "me")]
    args += ["--wheel-dir", str(WHEELS), "--no-download"]
    r = subprocess.run([sys.executable, "-m", "jigsaw_kit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr + r.stdout
    return inp, working, inp / "datasets" / "me" / "jigsaw-kit-wheels"


def _safety_net_predictions(inp: Path) -> pd.Series:
    data = sn.find_data(inp)
    train, test = (pd.read_csv(data / f, dtype=str, keep_default_na=False) for f in ("train.csv", "test.csv"))
    return pd.Series(sn.tfidf_scores(sn.labelled_rows(train, test), test), index=test["row_id"].astype("int64"))


def _check_submission(working: Path, inp: Path) -> pd.DataFrame:
    sub = pd.read_csv(working / "submission.csv")
    sample = pd.read_csv(SAMPLE / "sample_submission.csv")
    assert sub.columns.tolist() == ["row_id", "rule_violation"] and sub["row_id"].tolist() == sample["row_id"].tolist()
    assert sub["rule_violation"].between(0, 1).all()
    # it ranks: the safety net's TF-IDF, which separates the sample's labelled train bodies
    want = _safety_net_predictions(inp)
    assert sub.set_index("row_id")["rule_violation"].to_dict() == pytest.approx(want.to_dict())
    return sub


def _no_exception(nb) -> None:
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


def test_every_wheel_of_the_bundle_installs_on_python_312(tmp_path):
    py = _python312()
    inp, _, wheels = _fake_kaggle(tmp_path)
    bundle = pd.read_json(wheels / "BUNDLE.json", typ="series")
    assert bundle["python"] == "3.12" and bundle["pythons"] == ["3.12", "3.11", "3.13"] and not bundle["warnings"]
    for entry in bundle["wheels"]:  # every package has a wheel for each of the three Pythons
        assert entry["name"] == "jigsaw-kit" or set(entry["pythons"]) == {"3.11", "3.12", "3.13"}, entry
    picked = [wheels / e["file"] for e in bundle["wheels"]]
    assert all(installs_on(p.name, "3.12") for p in picked)
    specific = [p.name.split("-")[0] for p in picked if "cp312-cp312" in p.name]
    assert "pyarrow" in specific and "regex" in specific
    # pip on 3.12 itself: every file unpacks and installs (no dependency resolution: the next test does that)
    cmd = [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(tmp_path / "t")]
    cmd += [str(p) for p in picked]
    r = subprocess.run(cmd, capture_output=True, text=True, env={"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "t" / "pyarrow").is_dir() and (tmp_path / "t" / "transformers").is_dir()


def test_rerun_with_a_broken_bundle_on_a_bare_image_ends_with_the_safety_net_s_submission(tmp_path, monkeypatch):
    py = _python312()
    inp, working, wheels = _fake_kaggle(tmp_path)
    for whl in wheels.glob("*.whl"):  # every wheel cut short, as an interrupted upload leaves them
        whl.write_bytes(whl.read_bytes()[: whl.stat().st_size // 2])
    image = _simulated_image(tmp_path / "bare", set(), site=_site(py), keep=_closure(py, BARE))
    out, vsite, net_log, nb = rehearse(tmp_path, monkeypatch, py, image, inp, working, RERUN)
    _no_exception(nb)
    assert "safety net: " in out and "FALLBACK: the install stage failed, so the later stages are skipped" in out
    assert f"pip could not install jigsaw_kit-{__version__}" in out
    assert not (vsite / "jigsaw_kit").exists() and not (vsite / "yaml").exists()
    assert "submission.csv: the safety net (TF-IDF per rule" in out and "1 fallback(s)" in out
    _check_submission(working, inp)
    assert not net_log.exists(), f"network attempted: {net_log.read_text()}"


def test_rerun_with_data_the_kit_refuses_installs_on_312_and_keeps_the_safety_net(tmp_path, monkeypatch):
    py = _python312()
    train = pd.read_csv(SAMPLE / "train.csv", dtype=str, keep_default_na=False)
    train.loc[0, "rule_violation"] = "2"  # the kit's validation refuses it; the safety net skips that row
    inp, working, _ = _fake_kaggle(tmp_path, train)
    out, vsite, net_log, nb = rehearse(tmp_path, monkeypatch, py, _site(py), inp, working, RERUN)
    _no_exception(nb)
    # the install: the kit, and from the bundle what the image lacks, on 3.12 (pyarrow and regex are cp312 wheels);
    # what needs torch cannot install here, and the import check says so
    assert f"jigsaw-kit {__version__} from {vsite}/jigsaw_kit/__init__.py" in out
    assert (vsite / "transformers").is_dir() and (vsite / "pyarrow").is_dir() and (vsite / "datasets").is_dir()
    assert "FALLBACK: pip could not install sentence-transformers" in out and "torch FAILED" in out
    assert "transformers ok" in out and "datasets ok" in out
    assert "cannot import torch: ModuleNotFoundError" in out  # the settings cell: members needing it are dropped
    # the data stage refuses the file (the kit's validation), the notebook goes on to its end without an exception
    assert "FALLBACK: the data stage failed, so the later stages are skipped (KitError:" in out
    assert "rule_violation" in out.split("FALLBACK: the data stage failed")[1][:600]
    assert ">> probe + plan" not in out
    sub = _check_submission(working, inp)
    test = pd.read_csv(SAMPLE / "test.csv")
    assert sub.merge(test[["row_id", "rule"]]).groupby("rule")["rule_violation"].nunique().gt(1).all()
    assert not net_log.exists(), f"network attempted: {net_log.read_text()}"
