"""Hostile input: every bad file is a KitError naming what to fix, or a documented safe handling.

The property test generates competition-shaped folders full of awkward text and broken cells and
runs load -> build -> TF-IDF train -> predict -> submission on each: the only outcomes allowed are
a valid submission or a KitError with a message. What each bad input does is listed in the
docstring of src/jigsaw_kit/data.py.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jigsaw_kit.cli import main
from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data import dataset
from jigsaw_kit.data.competition import EXAMPLE_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS, load_competition
from jigsaw_kit.data.submission import make_submission
from jigsaw_kit.pipeline import fit as train
from jigsaw_kit.pipeline import predict

from ..conftest import RULE_A, RULE_B, SAMPLE, make_test, make_train, write_competition

TFIDF = load_config("tfidf-lr")
LONG = "spam " * 20_000  # 100 kB
HOSTILE_TEXTS = [
    "",
    "   ",
    "\t\r\n",
    "NaN",
    "NA",
    "null",
    "None",
    "😀🔥👍🏽 buy now 🚀",
    "\u202eevil override\u202c",
    "שלום עולם, זה בסדר",
    "مرحبا بالعالم",
    "\u200b",
    "zero\u200bwidth\u200cjoin\u200d\ufeff",
    "\x00\x01\x07\x1b[31mred",
    "\x1c\x1d\x1e\x1f\x85",  # str.isspace: counts as empty
    "&amp; &lt;b&gt;bold&lt;/b&gt; &#39;x&#39;",
    "[click here](http://spam.example/?a=1&b=2) **free** `code`",
    'he said "hi", then left',
    "line one\nline two\r\nline three\rfour",
    ",,,;;;\t|||",
    "=cmd|' /C calc'!A0",
    LONG,
]
BLANKS = [t for t in HOSTILE_TEXTS if not t.strip()]
WORDS = st.one_of(
    st.sampled_from([t for t in HOSTILE_TEXTS if t.strip()]),
    # Every category but surrogates (a UTF-8 file cannot hold them): controls, format chars
    # (zero-width, RTL marks), symbols (emoji), separators, letters of every script.
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
    st.text("ab ,\"'\n\r", min_size=1, max_size=12),
).filter(lambda t: t.strip())
RULES = [RULE_A, RULE_B, "Rule with émoji 🚫 and ,comma", "\u200bno links"]


def _percent(draw, p: int) -> bool:
    return draw(st.integers(0, 99)) < p


def _cell(draw, p_blank: int):
    """Non-blank hostile text, or with p_blank % chance an empty / whitespace / missing (NaN) cell."""
    return draw(st.sampled_from([*BLANKS, None])) if _percent(draw, p_blank) else draw(WORDS)


def _ids(draw, n: int) -> list:
    ids = draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n, unique=True))
    if n and _percent(draw, 5):  # sometimes a broken id
        ids[draw(st.integers(0, n - 1))] = draw(st.sampled_from(["", "x", "1.5", 10**20, " 7 ", "inf"]))
    if n > 1 and _percent(draw, 5):  # sometimes a duplicate
        ids[-1] = ids[0]
    return ids


def _frame(draw, n: int, columns: list[str]) -> pd.DataFrame:
    labelled = "rule_violation" in columns
    ids = _ids(draw, n)
    rows = []
    for i in range(n):
        row = {
            "row_id": ids[i],
            "rule": draw(st.sampled_from(RULES)) if not _percent(draw, 2) else draw(st.sampled_from(BLANKS)),
            "subreddit": _cell(draw, 10),
            "body": _cell(draw, 3 if labelled else 15),
            **{c: _cell(draw, 25) for c in EXAMPLE_COLUMNS},
        }
        if _percent(draw, 15):  # identical example columns
            row["negative_example_1"] = row["positive_example_1"]
        if labelled:
            bad = ["1.0", " 0 ", "", "2", "-1", "yes", "nan"]
            row["rule_violation"] = draw(st.sampled_from(bad if _percent(draw, 4) else ["0", "1"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


@st.composite
def competitions(draw):
    train = _frame(draw, draw(st.integers(1, 6)), TRAIN_COLUMNS)
    test = _frame(draw, draw(st.integers(1, 4)), TEST_COLUMNS)
    sample = pd.DataFrame({"row_id": test["row_id"], "rule_violation": 0.5})
    fault = draw(st.sampled_from(["none"] * 16 + ["sample_order", "sample_missing", "drop_col", "extra_col"]))
    if fault == "sample_order" and len(sample) > 1:
        sample = sample.iloc[::-1]
    elif fault == "sample_missing":
        sample = sample.iloc[:-1]
    elif fault == "drop_col":
        train = train.drop(columns=[draw(st.sampled_from(TRAIN_COLUMNS))])
    elif fault == "extra_col":
        test = test.assign(extra="x")
    # Both ways a CSV writer quotes a bare "\r" inside a cell (pandas' default "\n" writer does not:
    # test_bare_carriage_return_in_a_cell covers that broken file).
    style = draw(st.sampled_from([{"lineterminator": "\r\n"}, {"quoting": csv.QUOTE_ALL}]))
    return train, test, sample, style


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""


def _clean(train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame) -> bool:
    """True when the folder has none of the faults that must be refused (so it must work)."""

    def ids_ok(ids) -> bool:
        return all(isinstance(i, int) and abs(i) < 2**53 for i in ids) and len(set(ids)) == len(ids)

    return (
        list(train.columns) == TRAIN_COLUMNS
        and list(test.columns) == TEST_COLUMNS
        and ids_ok(list(train["row_id"]))
        and ids_ok(list(test["row_id"]))
        and list(sample["row_id"]) == list(test["row_id"])
        and not any(_blank(v) for v in train["body"])
        and not any(_blank(v) for v in train["rule"])
        and all(str(v).strip() in ("0", "1", "1.0") for v in train["rule_violation"])
    )


def run_pipeline(d: Path, run_dir: Path) -> pd.DataFrame:
    comp = load_competition(d)
    p = dataset.build(comp, TFIDF)
    train(TFIDF, p.train, run_dir, manifest=p.manifest)
    preds = predict(run_dir, TFIDF, p.test, show_progress=False)
    return make_submission(p.test["row_id"], preds, p.sample_submission)


outcomes: dict[str, int] = {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(competitions())
def test_any_folder_gives_a_valid_submission_or_a_kit_error(frames):
    train_df, test_df, sample, style = frames
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "data"
        d.mkdir()
        for name, df in (("train.csv", train_df), ("test.csv", test_df), ("sample_submission.csv", sample)):
            df.to_csv(d / name, index=False, **style)
        try:
            sub = run_pipeline(d, Path(tmp) / "run")
        except KitError as e:
            msg = str(e)
            assert msg.strip(), "a KitError must say what is wrong"
            # A clean folder may only fail when dedup ties leave nothing to learn from.
            assert not _clean(train_df, test_df, sample) or "no labelled rows" in msg, msg
            outcomes["kit_error"] = outcomes.get("kit_error", 0) + 1
            return
        written = pd.read_csv(d / "sample_submission.csv", dtype=str)["row_id"].str.strip().astype("int64")
        assert sub["row_id"].tolist() == written.tolist()
        v = sub["rule_violation"].to_numpy(dtype=float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all()
        outcomes["submission"] = outcomes.get("submission", 0) + 1


def test_property_saw_both_outcomes():
    # Runs after the property test in file order: a generator that only ever errors proves nothing.
    if not outcomes:
        pytest.skip("run together with the property test")
    print(f"hostile property outcomes: {outcomes}")
    assert outcomes.get("submission", 0) > 0 and outcomes.get("kit_error", 0) > 0


# --- one test per named bad input ------------------------------------------------------------


def good_frames():
    train_df = make_train(
        [
            (0, "buy my stuff at shop.example", RULE_A, 1, "cheap pills here", "visit my store", "nice day", "i agree"),
            (1, "i like turtles", RULE_A, 0, "follow my channel", "buy followers", "good point", "thanks"),
        ]
    )
    test_df = make_test([(10, "great deals at deals.example", RULE_A, "ad one", "ad two", "hello", "ok then")])
    return train_df, test_df


def _write(tmp_path: Path, train_df=None, test_df=None, sample=None) -> Path:
    tr, te = good_frames()
    return write_competition(
        tmp_path / "data", tr if train_df is None else train_df, te if test_df is None else test_df, sample
    )


def _raw(d: Path, name: str, data: bytes) -> Path:
    (d / name).write_bytes(data)
    return d


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("train.csv", b"", r"train.csv: the file is empty"),
        ("test.csv", b"", r"test.csv: the file is empty"),
        ("sample_submission.csv", b"", r"sample_submission.csv: the file is empty"),
        ("test.csv", (",".join(TEST_COLUMNS) + "\n").encode(), r"test.csv: header only"),
        ("sample_submission.csv", b"row_id,rule_violation\n", r"sample_submission.csv: row_id must equal.*10"),
        ("train.csv", "\t".join(TRAIN_COLUMNS).encode() + b"\n", r"train.csv: the header is separated by tab"),
        ("train.csv", ";".join(TRAIN_COLUMNS).encode() + b"\n", r"separated by ';'.*comma-separated"),
    ],
)
def test_empty_header_only_and_delimiter(tmp_path, name, data, match):
    with pytest.raises(KitError, match=match):
        load_competition(_raw(_write(tmp_path), name, data))


def test_latin1_bytes_name_the_line(tmp_path):
    d = _write(tmp_path)
    text = (d / "train.csv").read_text(encoding="utf-8").replace("i like turtles", "caf\u00e9 au lait")
    (d / "train.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(KitError, match=r"train.csv: not UTF-8 at line 3 \(byte \d+: 0xe9\).*latin-1.*iconv"):
        load_competition(d)


def test_utf16_is_recognised(tmp_path):
    d = _write(tmp_path)
    (d / "test.csv").write_bytes((d / "test.csv").read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(KitError, match=r"test.csv: not UTF-8 at line 1.*UTF-16"):
        load_competition(d)


def test_utf8_bom_is_accepted(tmp_path):
    d = _write(tmp_path)
    (d / "train.csv").write_bytes(b"\xef\xbb\xbf" + (d / "train.csv").read_bytes())
    assert load_competition(d).train["row_id"].tolist() == [0, 1]


def test_trailing_delimiter_is_refused_not_shifted(tmp_path):
    d = _write(tmp_path)
    lines = (d / "test.csv").read_text(encoding="utf-8").splitlines()
    (d / "test.csv").write_text("\n".join([lines[0], *(line + "," for line in lines[1:])]) + "\n", encoding="utf-8")
    with pytest.raises(KitError, match=r"test.csv: data row 1 \(row_id '10'\) has 9 fields, more than the header's 8"):
        load_competition(d)


def test_unclosed_quote(tmp_path):
    d = _write(tmp_path)
    with open(d / "test.csv", "a", encoding="utf-8") as f:
        f.write('11,"never closed,rule,sub,a,b,c,d\n')
    with pytest.raises(KitError, match=r"test.csv: cannot be parsed as CSV.*quote"):
        load_competition(d)


def test_bare_carriage_return_in_a_cell(tmp_path):
    # pandas' default writer leaves a lone "\r" unquoted; readers see a line break there. The split
    # row cannot slip through: its id is not an integer, or test.csv no longer matches the sample.
    _, te = good_frames()
    with pytest.raises(KitError, match=r"test.csv: column row_id must hold integers; got \['b'\] at data row\(s\) 2"):
        load_competition(_write(tmp_path, test_df=te.assign(body="a\rb")))
    split = r"sample_submission.csv: row_id must equal.*in test.csv only: 12; in sample_submission.csv only: none"
    with pytest.raises(KitError, match=split):
        load_competition(_write(tmp_path, test_df=te.assign(body="a\r12")))


def test_short_rows_read_as_empty_cells(tmp_path):
    d = _write(tmp_path)
    with open(d / "train.csv", "a", encoding="utf-8") as f:
        f.write("7,only a body\n")  # rule and label cells absent
    with pytest.raises(KitError, match=r"train.csv: column rule is empty at row_id\(s\) 7"):
        load_competition(d)


@pytest.mark.parametrize(
    "ids, match",
    [
        (["", "1"], r"train.csv: column row_id must hold integers; got \[''\] at data row\(s\) 1"),
        (["0", "1.5"], r"row_id must hold integers; got \['1.5'\] at data row\(s\) 2"),
        (["0", str(10**20)], r"row_id must hold integers"),
        (["3", "3"], r"row_id has duplicates: 3"),
    ],
)
def test_bad_train_ids(tmp_path, ids, match):
    tr, _ = good_frames()
    with pytest.raises(KitError, match=match):
        load_competition(_write(tmp_path, train_df=tr.assign(row_id=ids)))


@pytest.mark.parametrize("labels", [["", "1"], ["1", "maybe"], ["1", "2"], ["-1", "0"]])
def test_bad_labels(tmp_path, labels):
    tr, _ = good_frames()
    bad_row = 0 if labels[0] in ("", "-1") else 1
    with pytest.raises(KitError, match=rf"column rule_violation must be 0 or 1.*row_id\(s\) {bad_row}\. Fix"):
        load_competition(_write(tmp_path, train_df=tr.assign(rule_violation=labels)))


def test_float_labels_are_accepted(tmp_path):
    tr, _ = good_frames()
    comp = load_competition(_write(tmp_path, train_df=tr.assign(rule_violation=["1.0", " 0 "])))
    assert comp.train["rule_violation"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda te: te.assign(row_id=[10, 10]), r"test.csv: column row_id has duplicates: 10"),
        (lambda te: te.rename(columns={"body": "comment"}), r"missing \['body'\], unexpected \['comment'\]"),
        (lambda te: te.assign(rule_violation=1), r"test.csv: expected columns.*unexpected \['rule_violation'\]"),
    ],
)
def test_bad_test_files(tmp_path, mutate, match):
    _, te = good_frames()
    te = pd.concat([te, te.assign(row_id=11)], ignore_index=True)
    with pytest.raises(KitError, match=match):
        load_competition(_write(tmp_path, test_df=mutate(te), sample=pd.DataFrame({"row_id": [10, 11]})))


def test_sample_in_other_order(tmp_path):
    _, te = good_frames()
    te = pd.concat([te, te.assign(row_id=11)], ignore_index=True)
    with pytest.raises(KitError, match=r"same ids, other order"):
        load_competition(_write(tmp_path, test_df=te, sample=pd.DataFrame({"row_id": [11, 10], "rule_violation": 0})))


def test_columns_in_other_order_are_fine(tmp_path):
    tr, te = good_frames()
    comp = load_competition(_write(tmp_path, train_df=tr[TRAIN_COLUMNS[::-1]], test_df=te[TEST_COLUMNS[::-1]]))
    assert list(comp.train.columns) == TRAIN_COLUMNS and list(comp.test.columns) == TEST_COLUMNS


def test_hostile_test_rows_are_all_scored(tmp_path, caplog):
    """Empty/NaN/whitespace bodies, unseen rules, all-empty examples, 100 kB and odd text: a row each."""
    tr, _ = good_frames()
    tr = pd.concat([tr, tr.assign(row_id=[2, 3], body=[LONG, "\u200b"], rule_violation=[1, 0])], ignore_index=True)
    bodies = ["", "   \t", None, LONG, *HOSTILE_TEXTS[7:]]
    te = make_test(
        [
            (100 + i, b, [RULE_A, RULE_B, "A rule nobody trained on"][i % 3], *([HOSTILE_TEXTS[i % 22]] * 2), "", "")
            for i, b in enumerate(bodies)
        ]
    )
    te.loc[0, EXAMPLE_COLUMNS] = ""  # a row with no examples at all
    te.loc[1, "rule"] = " "  # a test row with an empty rule: scored too
    d = _write(tmp_path, train_df=tr, test_df=te)
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit"):
        sub = run_pipeline(d, tmp_path / "run")
    assert sub["row_id"].tolist() == te["row_id"].tolist()
    assert sub["rule_violation"].between(0, 1).all()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "column body is empty at 4 row_id(s) 100, 101, 102, 111" in warned  # 111: only \x1c-\x1f, \x85
    assert "column rule is empty at 1 row_id(s) 101" in warned


def test_unseen_test_rule_is_learnt_from_test_examples(tmp_path):
    tr, _ = good_frames()
    te = make_test(
        [
            (10, "you should sue them", RULE_B, "sue your landlord now", "file a claim in court", "nice cat", "lol"),
            (11, "what a cute cat", RULE_B, "get a lawyer", "the statute says", "i love cats", "good morning"),
        ]
    )
    comp = load_competition(_write(tmp_path, test_df=te))
    p = dataset.build(comp, TFIDF)
    assert p.manifest["counts"]["test_rules_unseen_in_train"] == [RULE_B]
    assert (p.train["rule"] == RULE_B).sum() == 8


def test_huge_cells_are_cut_and_then_truncated_by_the_tokenizer(tmp_path, monkeypatch, caplog):
    # A 300 kB comment under a 5 kB rule: uncut, the tokenizer's pair truncation needs gigabytes.
    from jigsaw_kit.core.checkpoints import load_tokenizer, resolve_model
    from jigsaw_kit.methods.transformer.trainer import tokenize_rows

    from ..conftest import ROOT

    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    tr, te = good_frames()
    long_rule = "Do not post " + "spam " * 1_000
    tr = tr.assign(rule=long_rule, body=[LONG * 3, "fine"], positive_example_1="😀" * 50_000)
    te = te.assign(rule=long_rule, body=LONG, negative_example_2=LONG)
    te = pd.concat([te, te.assign(row_id=11, body="")], ignore_index=True)  # and an empty comment
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit"):
        comp = load_competition(_write(tmp_path, train_df=tr, test_df=te))
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "column body is longer than 20000 characters at row_id(s) 0; cut" in warned
    assert "column rule is longer than 2000 characters at row_id(s) 0, 1; cut" in warned
    cfg = load_config("cpu-minilm")
    p = dataset.build(comp, cfg)
    assert p.train["text"].str.len().max() == 20_000 and p.test["rule"].str.len().max() == 2_000
    tok = load_tokenizer(resolve_model(cfg.options.model))
    for rows, labels in ((p.train, True), (p.test, False)):
        ds = tokenize_rows(tok, rows, max_length=64, with_labels=labels)
        assert max(ds["length"]) == 64 and min(ds["length"]) >= 3  # [CLS] rule [SEP] [SEP] at least


def test_save_never_leaves_a_folder_that_looks_complete(tmp_path, monkeypatch):
    p = dataset.build(load_competition(SAMPLE), TFIDF)
    out = dataset.save(p, tmp_path / "processed")
    real = pd.DataFrame.to_parquet

    def crash_on_test(self, path, *a, **k):
        if "test" in Path(path).name:
            raise OSError("disk full")
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_on_test)
    with pytest.raises(OSError):
        dataset.save(p, out)
    # The old manifest is gone, so `load` refuses the half-rewritten folder; no temp files stay.
    assert not (out / "manifest.json").exists()
    assert sorted(f.name for f in out.iterdir()) == ["sample_submission.csv", "test.parquet", "train.parquet"]
    with pytest.raises(KitError, match="no manifest.json"):
        dataset.load(out)


def test_output_under_a_file_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    code = main(
        [
            "run",
            "--data-dir",
            str(SAMPLE),
            "--config",
            "tfidf-lr",
            "--output",
            str(blocker / "sub.csv"),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--output" in err and "is a file, not a folder" in err
    assert not (tmp_path / "run").exists()  # nothing built or trained


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_output_in_read_only_folder_fails_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code = main(
            ["run", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--output", str(ro / "s.csv"), "--run-dir",
             str(tmp_path / "run")]
        )  # fmt: skip
    finally:
        ro.chmod(0o755)
    assert code == 2 and "not writable" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_nan_values_never_reach_the_submission():
    sample = pd.DataFrame({"row_id": [1]})
    with pytest.raises(KitError):
        make_submission(pd.Series([1]), np.array([math.nan]), sample)
