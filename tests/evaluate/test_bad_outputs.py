"""Hostile files written by earlier commands (issue 27): OOF files and submissions fed to blend.

Each bad input ends in a KitError (one `error:` line from the CLI, exit 2) or in exactly the numbers the
intact files give; never a traceback, never another number.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jigsaw_kit.cli import main
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.blend import blend_oof
from jigsaw_kit.evaluate.blend_fit import fit_blend_oof

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def oof_frame(lb_proxy: bool = False, seed: int = 0) -> pd.DataFrame:
    """A small `cv`-shaped OOF: 3 folds x 2 rules x 6 texts, balanced labels; lb-proxy adds a part column."""
    rng = np.random.default_rng(seed)
    rows = [
        {"rule": r, "text": f"{r} text {f}-{i}", "label": i % 2, "fold": f}
        for f in range(3)
        for r in ("No spam", "No legal advice")
        for i in range(6)
    ]
    df = pd.DataFrame(rows)
    if lb_proxy:
        df = pd.concat([df.assign(part="seen"), df.assign(part="unseen", fold=df["fold"] + 3)], ignore_index=True)
    return df.assign(prediction=df["label"] * 0.5 + rng.random(len(df)))[
        ["rule", "text", "label", "prediction", "fold", *(["part"] if lb_proxy else [])]
    ]


def write_oofs(d: Path, frames: list[pd.DataFrame]) -> list[Path]:
    paths = []
    for i, f in enumerate(frames):
        (d / f"m{i}").mkdir(parents=True, exist_ok=True)
        f.to_csv(d / f"m{i}" / "oof.csv", index=False)
        paths.append(d / f"m{i}" / "oof.csv")
    return paths


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI; assert it failed with one `error:` line (no traceback) and return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda f, p: f.drop(columns="prediction").to_csv(p, index=False), "'prediction'"),
        (lambda f, p: f.drop(columns="rule").to_csv(p, index=False), "'rule'"),
        (lambda f, p: p.write_bytes(b""), "empty"),
        (lambda f, p: f.head(0).to_csv(p, index=False), "no rows"),
        (lambda f, p: oof_frame(lb_proxy=True).to_csv(p, index=False), "different schemes"),
        (lambda f, p: f.assign(fold=f["fold"].map({0: 1, 1: 2, 2: 0})).to_csv(p, index=False), "folds differ"),
        (lambda f, p: pd.concat([f, f.tail(1)]).to_csv(p, index=False), "share their"),
        (lambda f, p: f.assign(label=1 - f["label"]).to_csv(p, index=False), "labels differ"),
        (lambda f, p: f.assign(prediction="n/a").to_csv(p, index=False), "'prediction'"),
    ],
    ids=["no-prediction", "no-rule", "empty", "header-only", "lb-proxy", "other-folds", "dup", "labels", "text-pred"],
)
def test_blend_oof_bad_second_file_is_one_error_line(tmp_path, capsys, damage, says, fit):
    a, b = write_oofs(tmp_path, [oof_frame(), oof_frame(seed=1)])
    damage(oof_frame(seed=1), b)
    err = cli_error(capsys, ["blend", str(a), str(b), "--oof", *(["--fit", "--grid-step", "0.5"] if fit else [])])
    assert str(b) in err and says in err


def test_blend_submission_inputs_checked(tmp_path, capsys):
    test = pd.DataFrame({"row_id": [1, 2], "body": ["x", "y"], "rule": ["r", "r"], "subreddit": ["s", "s"]})
    for c in ("positive_example_1", "positive_example_2", "negative_example_1", "negative_example_2"):
        test[c] = "e"
    test.to_csv(tmp_path / "test.csv", index=False)
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"row_id": [1, 2], "rule_violation": [0.1, 0.9]}).to_csv(good, index=False)
    for text, says in [("", "empty"), ("row_id,rule_violation\n", "no rows"), ("row_id,rule_violation\n1,x\n2,1\n",
                       "'rule_violation'"), ("row_id,rule_violation\n1.5,0\n2,1\n", "integers")]:  # fmt: skip
        bad.write_text(text)
        err = cli_error(capsys, ["blend", str(good), str(bad), "--test", str(tmp_path / "test.csv"),
                                 "--output", str(tmp_path / "o.csv")])  # fmt: skip
        assert str(bad) in err and says in err


# --- fuzz: every mutation of an OOF file is a KitError or leaves the numbers exactly as they were -------------


def _mutate(draw, f: pd.DataFrame, path: Path) -> None:
    """Write f to path damaged one way (or harmlessly changed: shuffled, reordered, an extra column)."""
    kind = draw(st.sampled_from(MUTATIONS))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    row = int(rng.integers(len(f)))
    col = draw(st.sampled_from(list(f.columns)))
    g = f.copy()
    if kind == "drop-column":
        g = g.drop(columns=col)
    elif kind == "rename-column":
        g = g.rename(columns={col: col.upper()})
    elif kind == "cell":
        g[col] = g[col].astype(object)
        bad = draw(st.sampled_from(["", "NaN", "inf", "-inf", "x", "1e999", "2"]))
        g.iloc[row, list(g.columns).index(col)] = "x" if (col, bad) == ("prediction", "2") else bad  # 2: a valid score
    elif kind == "drop-row":
        g = g.drop(index=g.index[row])
    elif kind == "dup-row":
        g = pd.concat([g, g.iloc[[row]]])
    elif kind == "flip-label":
        g.loc[g.index[row], "label"] = 1 - g.loc[g.index[row], "label"]
    elif kind == "refold":
        g.loc[g.index[row], "fold"] = (g.loc[g.index[row], "fold"] + 1) % 3
    elif kind == "other-scheme":
        g = oof_frame(lb_proxy="part" not in g.columns) if draw(st.booleans()) else g.drop(columns="fold")
    elif kind == "harmless":
        g = g.sample(frac=1, random_state=row).assign(extra="x")
        g = g[list(reversed(g.columns))]
    if kind == "bytes":
        raw = draw(st.sampled_from([b"", b"\xff\xfe\x00garbage", b"rule;text;label;prediction\n1;2;3;4\n"]))
        path.write_bytes(raw)
    elif kind == "cut":
        raw = f.to_csv(index=False).encode()
        path.write_bytes(raw[: draw(st.integers(0, len(raw)))])
    elif kind == "folder":
        path.mkdir()
    else:
        g.to_csv(path, index=False)


MUTATIONS = ["drop-column", "rename-column", "cell", "drop-row", "dup-row", "flip-label", "refold",
             "other-scheme", "harmless", "bytes", "cut", "folder"]  # fmt: skip


@FUZZ
@given(data=st.data(), lb_proxy=st.booleans(), which=st.integers(0, 1))
def test_fuzz_oof_files_error_or_same_numbers(data, lb_proxy, which):
    frames = [oof_frame(lb_proxy, seed=0), oof_frame(lb_proxy, seed=1)]
    with tempfile.TemporaryDirectory() as d:
        good = write_oofs(Path(d) / "good", frames)
        want_blend = blend_oof(good, None)[1]
        want_fit = fit_blend_oof(good, grid_step=0.5)
        bad = write_oofs(Path(d) / "bad", frames)
        bad[which].unlink()
        _mutate(data.draw, frames[which], bad[which])
        try:
            got = blend_oof(bad, None)[1]
        except KitError as e:
            assert str(e).strip() and "\n" not in str(e)
            with pytest.raises(KitError):
                fit_blend_oof(bad, grid_step=0.5)
            return
        assert list(got.values()) == list(want_blend.values())
        fit = fit_blend_oof(bad, grid_step=0.5)
        for k in ("weights", "score_equal", "score_fitted_held_out", "score_fitted_in_sample"):
            assert fit[k] == want_fit[k], k


# --- output names: --output names a file, a name without a suffix included; never made a folder ------------


def test_output_without_suffix_is_a_file_for_run(tmp_path, capsys):
    from ..conftest import SAMPLE

    out = tmp_path / "mysub"
    argv = ["run", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--run-dir", str(tmp_path / "run")]
    assert main([*argv, "--output", str(out)]) == 0
    assert out.is_file() and pd.read_csv(out).columns.tolist() == ["row_id", "rule_violation"]
    (tmp_path / "folder").mkdir()  # an existing folder is refused at start, before any work
    err = cli_error(capsys, [*argv[:-1], str(tmp_path / "run2"), "--output", str(tmp_path / "folder")])
    assert "is a folder" in err and not (tmp_path / "run2").exists()


@pytest.mark.parametrize("oof", [False, True])
def test_blend_output_checked_before_reading(tmp_path, capsys, oof):
    a, b = write_oofs(tmp_path, [oof_frame(), oof_frame(seed=1)])
    (tmp_path / "taken").mkdir()
    extra = ["--oof"] if oof else ["--test", str(tmp_path / "test.csv")]
    err = cli_error(capsys, ["blend", str(a), str(b), *extra, "--output", str(tmp_path / "taken")])
    assert "is a folder" in err  # refused on the name, not after reading the inputs
    if oof:
        assert main(["blend", str(a), str(b), "--oof", "--output", str(tmp_path / "blended")]) == 0
        assert (tmp_path / "blended").is_file()


def test_blend_missing_test_file_is_one_error_line(tmp_path, capsys):
    a, b = write_oofs(tmp_path, [oof_frame(), oof_frame(seed=1)])
    err = cli_error(capsys, ["blend", str(a), str(b), "--test", str(tmp_path / "nope.csv")])
    assert "nope.csv" in err and "no such file" in err


# --- compare: metrics.json of another shape is one error line, never an AttributeError/TypeError ------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


def _paths(m, prefix=()):
    """Every (path, container) inside a JSON value, so one of them can be replaced."""
    items = m.items() if isinstance(m, dict) else enumerate(m) if isinstance(m, list) else []
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), lb_proxy=st.booleans())
def test_fuzz_compare_metrics_json(data, lb_proxy):
    from jigsaw_kit.evaluate.compare import compare, format_markdown, write_compare

    from .test_compare import LB_FOLDS, _curve, _metrics

    names = LB_FOLDS if lb_proxy else ["fold0", "fold1", "fold2", "fold3"]
    curve = _curve([0.6, 0.7, 0.75, 0.8], 0.05)
    good = _metrics("lb-proxy" if lb_proxy else "novel", names, [0.8, 0.7, 0.6, 0.5], curve)
    bad = json.loads(json.dumps(good))
    where = data.draw(st.sampled_from(list(_paths(bad))))
    parent = bad
    for k in where[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    with tempfile.TemporaryDirectory() as d:
        for name, m in (("a", good), ("b", bad)):
            (Path(d) / name).mkdir()
            (Path(d) / name / "metrics.json").write_text(json.dumps(m))
        try:
            res = compare([Path(d) / "a", Path(d) / "b"])
        except KitError as e:
            assert "metrics.json" in str(e) and "\n" not in str(e)
            return
        format_markdown(res)
        if data.draw(st.integers(0, 2)) == 0:  # the figure is the slow part: drawn for a third of the cases
            write_compare(res, Path(d) / "out")
        assert res["inputs"][0]["headline"] == good["mean_rule_auc"]  # the intact input's numbers stand


def test_compare_metrics_of_another_shape_is_one_error_line(tmp_path, capsys):
    from .test_compare import _metrics

    good = _metrics("novel", ["fold0", "fold1"], [0.8, 0.7])
    shapes = [{**good, "folds": [1, 2]}, {**good, "parts": []}, {**good, "learning_curve": {"points": 3}}]
    for i, m in enumerate(shapes):
        (tmp_path / f"m{i}").mkdir()
        (tmp_path / f"m{i}" / "metrics.json").write_text(json.dumps(m))
        err = cli_error(capsys, ["compare", str(tmp_path / f"m{i}"), "--output", str(tmp_path / "out")])
        assert f"m{i}" in err and "metrics.json" in err


# --- cv --output-dir reuse: a used folder whose names are taken by folders/files fails at start -------------


@pytest.mark.parametrize("taken", ["oof.csv", "metrics.json", "config.yaml", "report.md", "roc_per_rule.png", "fold0"])
def test_cv_output_dir_reuse_checked_before_training(tmp_path, capsys, taken):
    from ..conftest import SAMPLE

    out = tmp_path / "cv"
    (out / taken).parent.mkdir(parents=True, exist_ok=True)
    if taken == "fold0":
        (out / taken).write_text("not a folder")
    else:
        (out / taken).mkdir()
    argv = ["cv", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--folds", "2", "--output-dir", str(out)]
    err = cli_error(capsys, argv)
    assert str(out / taken) in err
    assert not (out / "fold1").exists() and not (out / "metrics.json").is_file()  # no fold trained, no result


def test_hidden_test_score_reads_submissions_through_the_checked_reader(tmp_path, capsys):
    from jigsaw_kit.data.hidden_test import synthesize_hidden

    from ..conftest import SAMPLE

    folder = synthesize_hidden(SAMPLE, tmp_path / "hidden", rows=200, seed=3)
    good = pd.read_csv(folder / "sample_submission.csv")
    cases = {
        "missing.csv": None,
        "empty.csv": "",
        "cols.csv": "row_id,score\n1,0.5\n",
        "text.csv": good.assign(rule_violation="high").to_csv(index=False),
        "ids.csv": good.assign(row_id="x").to_csv(index=False),
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        err = cli_error(capsys, ["hidden-test", "--out", str(folder), "--score", str(tmp_path / name)])
        assert name in err
    (folder / "hidden_labels.csv").write_text("row_id\n")
    err = cli_error(capsys, ["hidden-test", "--out", str(folder), "--score", str(folder / "sample_submission.csv")])
    assert "hidden_labels.csv" in err


SUB_DAMAGE = ["drop-column", "cell", "drop-row", "dup-row", "cut", "bytes", "folder", "harmless", "extra-row"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kind=st.sampled_from(SUB_DAMAGE),
    row=st.integers(0, 5),
    cut=st.floats(0, 1),
    cell=st.sampled_from(["", "nan", "inf", "x", "1.5", "-", "1e999"]),
    col=st.sampled_from(["row_id", "rule_violation"]),
)
def test_fuzz_blend_submissions(kind, row, cut, cell, col):
    from jigsaw_kit.evaluate.blend import blend_submissions

    test = pd.DataFrame({"row_id": range(10, 16), "rule": ["a", "b"] * 3})
    subs = [pd.DataFrame({"row_id": test["row_id"], "rule_violation": np.linspace(0, 1, 6)[::s]}) for s in (1, -1)]
    with tempfile.TemporaryDirectory() as d:
        paths = [Path(d) / "a.csv", Path(d) / "b.csv"]
        for s, p in zip(subs, paths):
            s.to_csv(p, index=False)
        want = blend_submissions(paths, test, [1, 2])
        g, p = subs[1].copy(), paths[1]
        p.unlink()
        if kind == "drop-column":
            g = g.drop(columns=col)
        elif kind == "cell":
            g[col] = g[col].astype(object)
            g.loc[row, col] = cell if (col, cell) != ("rule_violation", "1.5") else "x"  # 1.5: a valid score
        elif kind == "drop-row":
            g = g.drop(index=row)
        elif kind in ("dup-row", "extra-row"):
            g = pd.concat([g, g.iloc[[row]].assign(row_id=99 if kind == "extra-row" else g["row_id"].iloc[row])])
        elif kind == "harmless":
            g = g.sample(frac=1, random_state=row)
        if kind == "cut":
            raw = g.to_csv(index=False).encode()
            p.write_bytes(raw[: int(cut * len(raw))])
        elif kind == "bytes":
            p.write_bytes(b"\xff\xfe\x00" if row % 2 else b"row_id;rule_violation\n1;2\n")
        elif kind == "folder":
            p.mkdir()
        else:
            g.to_csv(p, index=False)
        try:
            got = blend_submissions(paths, test, [1, 2])
        except KitError as e:
            assert str(p) in str(e) and "\n" not in str(e), e
            return
        # accepted: the same blend (an extra row_id the test does not hold is ignored, as before)
        pd.testing.assert_frame_equal(got, want)
