"""The disk cache of sentence embeddings: keyed by checkpoint content, exact, safe under concurrency."""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods import embed, embed_cache
from jigsaw_kit.methods.embed_cache import (
    EmbeddingCache,
    cache_report,
    cache_root,
    checkpoint_fingerprint,
    clear_cache,
    prune,
)

from ..conftest import fake_checkpoint

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "weights" / "all-MiniLM-L6-v2"
FP = "ab" * 32  # a well-formed fingerprint for tests that use EmbeddingCache directly


def fake_vectors(texts, dim: int = 8) -> np.ndarray:
    """Deterministic float32 unit vectors, one per text: what a fake encoder and the writers agree on."""
    seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
    x = np.stack([np.random.default_rng(s).standard_normal(dim) for s in seeds]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_checkpoint(d: Path, weights: bytes = b"") -> Path:
    """conftest.fake_checkpoint shaped like a sentence-transformers export, with 300 kB of weight bytes to hash."""
    files = {"tokenizer.json": '{"version": "1.0"}', "modules.json": "[]"}
    files["1_Pooling/config.json"] = '{"pooling_mode_mean_tokens": true}'
    weights = weights or np.random.default_rng(0).bytes(300_000)
    return fake_checkpoint(d, {"model_type": "bert", "hidden_size": 8}, weights=weights, files=files)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(d))
    for var in ("JIGSAW_KIT_EMBED_CACHE", "JIGSAW_KIT_CACHE_MAX_GB"):
        monkeypatch.delenv(var, raising=False)
    embed._CACHE.clear()
    embed._DISK.clear()
    yield d
    embed._CACHE.clear()
    embed._DISK.clear()


@pytest.fixture
def encoder_calls(monkeypatch):
    calls: list[list[str]] = []

    def fake(model_path, texts, max_length, token_budget):
        calls.append(list(texts))
        return fake_vectors(texts)

    monkeypatch.setattr(embed, "_encode_uncached", fake)
    return calls


def new_process() -> None:
    """What a fresh process starts with: nothing in memory (the fingerprint memo may stay, it is content-keyed)."""
    embed._CACHE.clear()
    embed._DISK.clear()


def test_fingerprint_follows_content_not_location(tmp_path):
    a = make_checkpoint(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    fp = checkpoint_fingerprint(a)
    assert len(fp) == 64 and fp == checkpoint_fingerprint(b)
    (b / "README.md").write_text("not part of the model")  # neither are sub-folders or other files
    (b / "1_Pooling" / "config.json").write_text("{}")
    assert checkpoint_fingerprint(b) == fp
    memo = len(embed_cache._FINGERPRINTS)
    assert checkpoint_fingerprint(b) == fp and len(embed_cache._FINGERPRINTS) == memo  # memoised: not rehashed
    with open(b / "model.safetensors", "ab") as f:
        f.write(b"\0")
    assert checkpoint_fingerprint(b) != fp
    (a / "tokenizer.json").write_text('{"version": "1.1"}')
    assert checkpoint_fingerprint(a) != fp
    (a / "config.json").unlink()
    with pytest.raises(KitError, match="config.json"):
        checkpoint_fingerprint(a)


def test_copied_checkpoint_hits_and_changed_weights_miss(tmp_path, cache_dir, encoder_calls, caplog):
    a = make_checkpoint(tmp_path / "a")
    texts = ["one", "two", "one", "three"]
    first = embed.embed_texts(a, texts, max_length=32)
    assert encoder_calls == [["one", "three", "two"]]
    b = tmp_path / "copy"
    shutil.copytree(a, b)
    new_process()
    with caplog.at_level(logging.INFO, logger="jigsaw_kit.methods.embed"):
        again = embed.embed_texts(b, texts, max_length=32)
    assert len(encoder_calls) == 1  # all from disk
    assert again.dtype == np.float32 and np.array_equal(again.view(np.uint32), first.view(np.uint32))
    assert f"embedding cache {cache_dir}" in caplog.text and "3 hits, 0 new" in caplog.text
    # a partial hit encodes only what is missing
    new_process()
    embed.embed_texts(b, ["two", "four"], max_length=32)
    assert encoder_calls[1:] == [["four"]]
    # retrained weights: a different fingerprint, so nothing is reused
    (b / "model.safetensors").write_bytes(np.random.default_rng(1).bytes(300_000))
    new_process()
    embed.embed_texts(b, texts, max_length=32)
    assert encoder_calls[2:] == [["one", "three", "two"]]


def test_a_different_max_length_misses(tmp_path, cache_dir, encoder_calls):
    a = make_checkpoint(tmp_path / "a")
    embed.embed_texts(a, ["x", "y"], max_length=32)
    new_process()
    embed.embed_texts(a, ["x", "y"], max_length=64)
    assert encoder_calls == [["x", "y"], ["x", "y"]]
    assert sorted(n[-9:] for n in cache_report(cache_dir)["namespaces"]) == ["-L32-mean", "-L64-mean"]


def test_a_folder_without_config_json_skips_the_disk_cache(tmp_path, cache_dir, encoder_calls):
    d = tmp_path / "not-a-checkpoint"
    d.mkdir()
    x = embed.embed_texts(d, ["x"], max_length=32)
    assert x.shape == (1, 8) and not cache_dir.exists()


@pytest.mark.parametrize("off", ["0", "off", "False", "no"])
def test_disabling_the_cache_writes_nothing(tmp_path, cache_dir, encoder_calls, monkeypatch, off):
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", off)
    assert cache_root() is None
    a = make_checkpoint(tmp_path / "a")
    embed.embed_texts(a, ["x", "y"], max_length=32)
    new_process()
    embed.embed_texts(a, ["x", "y"], max_length=32)
    assert len(encoder_calls) == 2 and not cache_dir.exists()


def test_cache_root_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("JIGSAW_KIT_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "jigsaw-kit" / "embeddings"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "jigsaw-kit" / "embeddings"
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_vectors_round_trip_bit_for_bit(cache_dir):
    texts = [f"t{i}" for i in range(6)] + ["", "ünïcode ✓"]
    x = fake_vectors(texts)
    x[0, :4] = [-0.0, np.finfo(np.float32).tiny / 4, np.nan, np.inf]  # odd floats survive too
    EmbeddingCache(cache_dir, FP, 32).put(texts, x)
    got = EmbeddingCache(cache_dir, FP, 32).get(texts + ["absent"])
    assert list(got) == texts
    assert np.array_equal(np.stack([got[t] for t in texts]).view(np.uint32), x.view(np.uint32))
    with pytest.raises(TypeError):
        EmbeddingCache(cache_dir, FP, 32).put(texts, x.astype(np.float64))


def test_real_encoder_vectors_come_back_exactly(cache_dir):
    if not (MINILM / "model.safetensors").is_file():
        pytest.skip(f"vendored checkpoint not found at {MINILM}")
    texts = ["a short one", "a much longer comment about legal advice and the court " * 3]
    fresh = embed.embed_texts(MINILM, texts, max_length=64)
    new_process()
    cached = embed.embed_texts(MINILM, texts, max_length=64)
    assert fresh.shape == (2, 384) and np.array_equal(cached.view(np.uint32), fresh.view(np.uint32))
    assert cache_report(cache_dir)["namespaces"][f"{checkpoint_fingerprint(MINILM)[:32]}-L64-mean"]["vectors"] == 2


WRITER_IMPORTS = """
import hashlib, sys
import numpy as np
from pathlib import Path
from jigsaw_kit.methods.embed_cache import EmbeddingCache
"""
WRITER = """
import time
Path(sys.argv[4], f"ready-{sys.argv[1]}").touch()  # start together: wait until both writers are up
while len(list(Path(sys.argv[4]).glob("ready-*"))) < 2:
    time.sleep(0.01)
cache = EmbeddingCache(Path(sys.argv[2]), sys.argv[3], 32)
texts = [f"shared {i}" for i in range(40)] + [f"{sys.argv[1]} {i}" for i in range(40)]
for k in range(0, len(texts), 8):
    cache.put(texts[k:k + 8], fake_vectors(texts[k:k + 8]))
"""


def test_two_processes_filling_at_once_leave_the_union(tmp_path, cache_dir):
    reader = EmbeddingCache(cache_dir, FP, 32)
    assert reader.get(["shared 0"]) == {}  # loaded (empty) before the writers start
    script = WRITER_IMPORTS + inspect.getsource(fake_vectors) + WRITER  # the same fake vectors as this test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    argv = [[sys.executable, "-c", script, name, str(cache_dir), FP, str(tmp_path)] for name in ("left", "right")]
    procs = [subprocess.Popen(a, env=env) for a in argv]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    union = [f"shared {i}" for i in range(40)] + [f"{s} {i}" for s in ("left", "right") for i in range(40)]
    for cache in (reader, EmbeddingCache(cache_dir, FP, 32)):  # a miss refreshes; a fresh reader loads all
        got = cache.get(union)
        assert len(got) == 120
        np.testing.assert_array_equal(np.stack([got[t] for t in union]), fake_vectors(union))
    folder = reader.folder
    assert len(list(folder.glob("*.npz"))) == 20 and not [f for f in folder.iterdir() if f.suffix != ".npz"]


def test_a_truncated_chunk_is_skipped_and_removed(cache_dir, caplog):
    cache = EmbeddingCache(cache_dir, FP, 32)
    good = cache.put(["a", "b"], fake_vectors(["a", "b"]))
    bad = cache.put(["c"], fake_vectors(["c"]))
    bad.write_bytes(bad.read_bytes()[:40])
    junk = cache.folder / ("0" * 32 + ".npz")
    junk.write_bytes(b"not a zip at all")
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.embed_cache"):
        got = EmbeddingCache(cache_dir, FP, 32).get(["a", "b", "c"])
    assert sorted(got) == ["a", "b"]
    assert good.exists() and not bad.exists() and not junk.exists()
    assert str(bad) in caplog.text


def test_a_chunk_the_disk_refuses_is_logged_not_raised(cache_dir, caplog):
    cache = EmbeddingCache(cache_dir, FP, 32)
    cache_dir.mkdir()
    cache.folder.write_text("a file where the namespace folder should be")
    with caplog.at_level(logging.WARNING):
        assert cache.put(["a"], fake_vectors(["a"])) is None
    assert "could not write" in caplog.text and cache.get(["a"]) == {}


def test_the_size_bound_prunes_the_oldest_chunks(cache_dir, monkeypatch, caplog):
    a, b = EmbeddingCache(cache_dir, FP, 32), EmbeddingCache(cache_dir, "cd" * 32, 32)
    now = time.time()
    first = a.put([f"x{i}" for i in range(50)], fake_vectors([f"x{i}" for i in range(50)]))
    os.utime(first, (now - 300, now - 300))
    second = b.put([f"y{i}" for i in range(50)], fake_vectors([f"y{i}" for i in range(50)]))
    os.utime(second, (now - 200, now - 200))
    size = first.stat().st_size
    monkeypatch.setenv("JIGSAW_KIT_CACHE_MAX_GB", str(2.5 * size / 1e9))
    with caplog.at_level(logging.INFO, logger="jigsaw_kit.methods.embed_cache"):
        third = a.put([f"z{i}" for i in range(50)], fake_vectors([f"z{i}" for i in range(50)]))
    assert not first.exists() and second.exists() and third.exists()  # oldest first, across namespaces
    assert "pruned 1 oldest chunks" in caplog.text
    second_size = second.stat().st_size
    assert prune(cache_dir, max_bytes=0, keep=third) == second_size  # the chunk just written is kept
    assert third.exists() and not second.exists()
    assert EmbeddingCache(cache_dir, FP, 32).get(["x0", "z0"]).keys() == {"z0"}


def test_cache_report_and_clear_cache(tmp_path, cache_dir):
    empty = {"folder": str(cache_dir), "namespaces": {}, "tuned": {"encoders": 0, "bytes": 0}, "total_bytes": 0}
    assert cache_report(cache_dir) == empty
    assert clear_cache(cache_dir) == 0
    a, b = EmbeddingCache(cache_dir, FP, 32), EmbeddingCache(cache_dir, FP, 64)
    a.put(["x", "y"], fake_vectors(["x", "y"]))
    a.put(["z"], fake_vectors(["z"]))
    b.put(["x"], fake_vectors(["x"]))
    report = cache_report(cache_dir)
    total = sum(f.stat().st_size for f in cache_dir.rglob("*.npz"))
    assert report["total_bytes"] == total
    assert {n: (v["chunks"], v["vectors"]) for n, v in report["namespaces"].items()} == {
        a.folder.name: (2, 3),
        b.folder.name: (1, 1),
    }
    # a folder that holds anything else is refused, and nothing is deleted
    (a.folder / "notes.txt").write_text("mine")
    with pytest.raises(KitError, match="notes.txt"):
        clear_cache(cache_dir)
    (a.folder / "notes.txt").unlink()
    (cache_dir / "photos").mkdir()
    with pytest.raises(KitError, match="photos"):
        clear_cache(cache_dir)
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('precious')")
    with pytest.raises(KitError, match="does not look like an embedding cache"):
        clear_cache(project)
    assert (project / "train.py").exists()
    assert cache_report(cache_dir)["total_bytes"] == total
    (cache_dir / "photos").rmdir()
    (a.folder / ".0123456789abcdef0123456789abcdef.npz.k3j2.tmp").write_bytes(b"left by a crash")
    assert clear_cache(cache_dir) == total + len(b"left by a crash")
    assert cache_dir.is_dir() and not list(cache_dir.iterdir())
