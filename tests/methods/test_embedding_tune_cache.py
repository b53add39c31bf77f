"""The tune cache (methods/embedding/tune_cache.py): a finished tune kept by content, a damaged entry re-made.

A stand-in for the tune itself (EncoderTune._train) writes a checkpoint whose bytes differ on every call, so a
hit (the cached bytes) and a miss (new bytes) are told apart by content as well as by the call count.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embed_cache import cache_report, checkpoint_fingerprint, clear_cache
from jigsaw_kit.methods.embedding import tune_cache
from jigsaw_kit.methods.embedding.tune import EncoderTune
from jigsaw_kit.methods.embedding.tune_cache import TuneCache
from jigsaw_kit.methods.options import TuneOptions

from ..conftest import fake_checkpoint

ROWS = pd.DataFrame(
    {
        "rule": ["r"] * 6 + ["s"] * 6,
        "text": [f"r text {i}" for i in range(6)] + [f"s text {i}" for i in range(6)],
        "label": [1, 1, 1, 0, 0, 0] * 2,
    }
)
OPTIONS = TuneOptions(steps=2, batch_size=4)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The cache on (the suite runs with it off), in a folder of the test's own."""
    root = tmp_path / "cache"
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(root))
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    return root


@pytest.fixture
def tunes(monkeypatch) -> list[dict]:
    """Replaces the tune with a stand-in; each call is recorded, with what it was given."""
    calls: list[dict] = []

    def fake_train(self, base, data, out_dir):
        calls.append({"base": base, "data": data, "options": self.options})
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text('{"model_type": "bert"}')
        (out_dir / "model.safetensors").write_bytes(f"weights of tune {len(calls)}".encode())
        (out_dir / "vocab.txt").write_text("[PAD]\n")
        return {"stopped_early": False, "stopped_at_step": None, "planned_steps": self.options.steps}

    monkeypatch.setattr(EncoderTune, "_train", fake_train)
    return calls


@pytest.fixture
def base(tmp_path) -> Path:
    return fake_checkpoint(tmp_path / "base")


def tune(base: Path, out: Path, rows: pd.DataFrame = ROWS, options: TuneOptions = OPTIONS, seed: int = 42) -> Path:
    info: dict = {}
    got = EncoderTune(options, seed=seed, max_length=64).run(base, rows, out, info=info)
    assert info == {"stopped_early": False, "stopped_at_step": None, "planned_steps": options.steps}
    return got


def test_the_same_tune_again_is_a_hit_with_the_same_files(cache, tunes, base, tmp_path):
    first = tune(base, tmp_path / "run1" / "encoder")
    second = tune(base, tmp_path / "run2" / "encoder")
    assert len(tunes) == 1
    assert second == tmp_path / "run2" / "encoder" and (second / "config.json").is_file()
    assert checkpoint_fingerprint(second) == checkpoint_fingerprint(first)
    assert (second / "model.safetensors").read_bytes() == b"weights of tune 1"
    assert cache_report(cache)["tuned"]["encoders"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"rows": ROWS.assign(label=[1, 1, 0, 1, 0, 0] * 2)},  # other labels: other pairs
        {"rows": ROWS.iloc[1:]},
        {"options": dataclasses.replace(OPTIONS, learning_rate=1e-5)},
        {"options": dataclasses.replace(OPTIONS, steps=3)},
        {"options": dataclasses.replace(OPTIONS, freeze_layers=2)},
        {"options": dataclasses.replace(OPTIONS, objective="triplets")},
        {"seed": 7},
    ],
)
def test_other_rows_options_or_seed_miss(cache, tunes, base, tmp_path, change):
    tune(base, tmp_path / "a")
    tune(base, tmp_path / "b", **change)
    assert len(tunes) == 2 and (tmp_path / "b" / "model.safetensors").read_bytes() == b"weights of tune 2"


def test_another_base_checkpoint_misses(cache, tunes, base, tmp_path):
    tune(base, tmp_path / "a")
    (base / "vocab.txt").write_text("[PAD]\n[UNK]\n")  # same folder, other content
    tune(base, tmp_path / "b")
    assert len(tunes) == 2


@pytest.mark.parametrize("damage", ["weights", "meta", "no-meta", "no-config"])
def test_a_damaged_entry_is_made_again_with_a_warning(cache, tunes, base, tmp_path, damage, caplog):
    tune(base, tmp_path / "a")
    (entry,) = (cache / "tuned").iterdir()
    if damage == "weights":  # the cached copy rewritten in place (a hard link shares the run's file: a new file)
        (entry / "encoder" / "model.safetensors").unlink()
        (entry / "encoder" / "model.safetensors").write_bytes(b"weights of tune 1, then some")
    elif damage == "meta":
        (entry / "tune.json").write_text("{not json")
    elif damage == "no-meta":
        (entry / "tune.json").unlink()
    else:
        (entry / "encoder" / "config.json").unlink()
    with caplog.at_level(logging.WARNING):
        tune(base, tmp_path / "b")
    assert len(tunes) == 2 and "is damaged" in caplog.text
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == b"weights of tune 2"
    tune(base, tmp_path / "c")  # the entry made again serves
    assert len(tunes) == 2 and (tmp_path / "c" / "model.safetensors").read_bytes() == b"weights of tune 2"


def test_the_cache_off_keeps_nothing(cache, tunes, base, tmp_path, monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "0")
    tune(base, tmp_path / "a")
    tune(base, tmp_path / "b")
    assert len(tunes) == 2 and not cache.exists()


def test_a_tune_the_deadline_cut_short_is_not_kept(cache, base, tmp_path, monkeypatch):
    def stopped(self, base, data, out_dir):
        (out_dir).mkdir(parents=True)
        (out_dir / "config.json").write_text('{"model_type": "bert"}')
        return {"stopped_early": True, "stopped_at_step": 1, "planned_steps": 2}

    monkeypatch.setattr(EncoderTune, "_train", stopped)
    info: dict = {}
    EncoderTune(OPTIONS, seed=42, max_length=64).run(base, ROWS, tmp_path / "a", info=info)
    assert info["stopped_early"] and not (cache / "tuned").exists()


def test_a_crash_while_storing_leaves_no_entry_and_no_temp_folder(cache, tunes, base, tmp_path, monkeypatch, caplog):
    def crash(src, dst, **kw):
        Path(dst).mkdir(parents=True)
        (Path(dst) / "config.json").write_text("{}")  # half a copy
        raise OSError("disk full")

    monkeypatch.setattr(tune_cache.shutil, "copytree", crash)
    with caplog.at_level(logging.WARNING):
        tune(base, tmp_path / "a")
    assert "could not keep the tune" in caplog.text
    assert list((cache / "tuned").iterdir()) == []  # neither an entry under the key nor the temp folder
    assert (tmp_path / "a" / "model.safetensors").is_file()  # the run has its encoder all the same


def test_the_least_recently_used_entries_go_beyond_the_keep_count(cache, tunes, base, tmp_path, monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_TUNE_KEEP", "2")
    for seed in (1, 2, 3):
        tune(base, tmp_path / f"s{seed}", seed=seed)
    assert cache_report(cache)["tuned"]["encoders"] == 2
    tune(base, tmp_path / "again", seed=3)  # the newest stayed
    assert len(tunes) == 3
    tune(base, tmp_path / "first", seed=1)  # the oldest went
    assert len(tunes) == 4


def test_jigsaw_kit_cache_reports_and_clears_the_tuned_encoders(cache, tunes, base, tmp_path):
    tune(base, tmp_path / "a")
    tune(base, tmp_path / "b", seed=1)
    report = cache_report(cache)
    assert report["tuned"]["encoders"] == 2 and report["total_bytes"] == report["tuned"]["bytes"] > 0
    (cache / "tuned" / "mine.txt").write_text("not the cache's")
    with pytest.raises(KitError, match="mine.txt"):
        clear_cache(cache)
    assert cache_report(cache)["tuned"]["encoders"] == 2  # nothing deleted
    (cache / "tuned" / "mine.txt").unlink()
    assert clear_cache(cache) == report["tuned"]["bytes"]
    assert list(cache.iterdir()) == []


def test_the_key_covers_the_tune_options_seed_and_length_and_the_examples(base, tmp_path):
    cache = TuneCache(tmp_path)
    data = {"sentence1": ["a"], "sentence2": ["b"], "label": [1.0]}
    parts = EncoderTune(OPTIONS, seed=42, max_length=64).key_parts()
    key = cache.key(base, data, parts)
    assert key == cache.key(base, json.loads(json.dumps(data)), dict(parts))  # a pure function of the content
    assert cache.key(base, {**data, "label": [0.0]}, parts) != key
    for other in (
        EncoderTune(OPTIONS, seed=42, max_length=128),
        EncoderTune(OPTIONS, seed=1, max_length=64),
        EncoderTune(dataclasses.replace(OPTIONS, warmup_ratio=0.2), seed=42, max_length=64),
        EncoderTune(dataclasses.replace(OPTIONS, batch_size=8), seed=42, max_length=64),
    ):
        assert cache.key(base, data, other.key_parts()) != key


def test_a_contrastive_refit_hits_and_predicts_the_same(cache, tunes, tmp_path, monkeypatch):
    """The whole method twice, as a CV re-run does: the second fit tunes nothing and predicts the same."""
    from jigsaw_kit.core.config import load_config
    from jigsaw_kit.methods.contrastive import ContrastiveHybrid
    from jigsaw_kit.methods.embedding import encoders

    from .test_hybrid import TRAIN
    from .test_hybrid_encoders import ASK as ASK_ROWS

    def fake_embed(model_path, texts, max_length, token_budget=16384, backend="torch-fp32"):
        seed = int.from_bytes((Path(model_path) / "model.safetensors").read_bytes()[-1:], "little")
        words = ["buy", "free", "click", "lawyer", "court", "sue", "cat", "weather"]
        x = np.array([[t.lower().count(w) + seed % 3 for w in words] + [1.0] for t in texts], dtype=float)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    monkeypatch.setattr(encoders, "embed_texts", fake_embed)
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(tmp_path / "weights"))
    fake_checkpoint(tmp_path / "weights" / "all-MiniLM-L6-v2")
    cfg = load_config("cpu-contrastive", {"embed_backend": "torch-fp32"})
    first = ContrastiveHybrid(cfg).fit(TRAIN, tmp_path / "fold1").predict(ASK_ROWS)
    second = ContrastiveHybrid(cfg).fit(TRAIN, tmp_path / "fold1-again").predict(ASK_ROWS)
    assert len(tunes) == 1
    np.testing.assert_array_equal(first, second)
