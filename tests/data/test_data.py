import pandas as pd
import pytest

from jigsaw_kit.cli import main
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data import competition as data_mod
from jigsaw_kit.data.competition import load_competition, locate_data_dir

from ..conftest import RULE_A, SAMPLE, make_test, make_train, write_competition


def good_frames():
    train = make_train(
        [(0, "body zero", RULE_A, 1, "p1", "p2", "n1", "n2"), (1, "body one", RULE_A, 0, "p1", "p2", "n1", "n2")]
    )
    test = make_test([(2, "test body", RULE_A, "p1", "p2", "n1", "n2")])
    return train, test


def test_explicit_dir_wins(tmp_path):
    d = write_competition(tmp_path / "mine", *good_frames())
    kaggle = write_competition(tmp_path / "kaggle" / "jigsaw-agile-community-rules", *good_frames())
    assert locate_data_dir(d, kaggle_root=kaggle.parent) == d


def test_kaggle_mounts_in_order(tmp_path, monkeypatch):
    root = tmp_path / "input"
    second = write_competition(root / "competitions" / "jigsaw-agile-community-rules", *good_frames())
    assert locate_data_dir(None, kaggle_root=root) == second
    first = write_competition(root / "jigsaw-agile-community-rules", *good_frames())
    assert locate_data_dir(None, kaggle_root=root) == first
    monkeypatch.setenv("JIGSAW_KIT_KAGGLE_INPUT", str(root))
    assert locate_data_dir(None) == first


def test_kagglehub_is_last_and_failure_lists_everything(tmp_path, monkeypatch):
    import kagglehub

    calls = []
    good = write_competition(tmp_path / "hub", *good_frames())
    monkeypatch.setattr(kagglehub, "competition_download", lambda name: calls.append(name) or str(good))
    assert locate_data_dir(None, kaggle_root=tmp_path / "empty") == good
    assert calls == ["jigsaw-agile-community-rules"]

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(kagglehub, "competition_download", offline)
    with pytest.raises(KitError) as e:
        locate_data_dir(None, kaggle_root=tmp_path / "empty")
    msg = str(e.value)
    assert "jigsaw-agile-community-rules (not there)" in msg and "competitions" in msg
    assert "kagglehub" in msg and "ConnectionError" in msg and "--data-dir" in msg


def test_missing_dir_names_the_missing_files(tmp_path):
    with pytest.raises(KitError, match="missing train.csv, test.csv, sample_submission.csv"):
        locate_data_dir(tmp_path / "nothing")


def test_sample_loads():
    comp = load_competition(SAMPLE)
    assert len(comp.train) > 100 and len(comp.test) == len(comp.sample_submission)
    assert comp.train["rule_violation"].isin([0, 1]).all()
    assert set(comp.hashes) == {"train.csv", "test.csv", "sample_submission.csv"}


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda tr, te, s: (tr.drop(columns=["subreddit"]), te, s),
            r"train.csv: expected columns.*missing \['subreddit'\]",
        ),
        (lambda tr, te, s: (tr.assign(rule_violation=[1, 2]), te, s), r"rule_violation must be 0 or 1.*row_id\(s\) 1"),
        (lambda tr, te, s: (tr.assign(row_id=[5, 5]), te, s), r"row_id has duplicates: 5"),
        (lambda tr, te, s: (tr.assign(body=["ok", "   "]), te, s), r"column body is empty at row_id\(s\) 1"),
        (lambda tr, te, s: (tr, te, s.assign(row_id=[99])), r"sample_submission.csv: row_id must equal test.csv"),
        (lambda tr, te, s: (tr, te.assign(extra=1), s), r"test.csv: expected columns.*unexpected \['extra'\]"),
        (lambda tr, te, s: (tr.iloc[0:0], te, s), r"header only"),
    ],
)
def test_bad_files_name_file_column_and_rows(tmp_path, mutate, match):
    train, test = good_frames()
    sample = pd.DataFrame({"row_id": test["row_id"], "rule_violation": 0.5})
    d = write_competition(tmp_path, *mutate(train, test, sample))
    with pytest.raises(KitError, match=match):
        load_competition(d)


def test_semicolon_file_gets_a_delimiter_hint(tmp_path):
    train, test = good_frames()
    d = write_competition(tmp_path, train, test)
    train.to_csv(d / "train.csv", index=False, sep=";")
    with pytest.raises(KitError, match="comma-separated"):
        load_competition(d)


def test_build_cli_rejects_bad_files_without_traceback(tmp_path, capsys):
    train, test = good_frames()
    d = write_competition(tmp_path / "bad", train.drop(columns=["rule"]), test)
    code = main(["build", "--data-dir", str(d), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "train.csv" in err and "rule" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_kaggle_mount_constant_paths():
    assert [str(p) for p in data_mod.KAGGLE_MOUNTS] == [
        "jigsaw-agile-community-rules",
        "competitions/jigsaw-agile-community-rules",
    ]
