"""Hostile files under a run (issue 27): embedding-cache chunks, saved run folders, config YAML, the auto plan.

The cache is an accelerator: whatever lies in it, a run gets the vectors `--no-cache` gives. A run folder or a
config that cannot be right ends in one KitError naming the file and the fix, before any work.
"""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jigsaw_kit.methods import embed
from jigsaw_kit.methods.embed_cache import EmbeddingCache, cache_report, checkpoint_fingerprint, prune

from .test_embed_cache import fake_vectors, make_checkpoint

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
TEXTS = ["one", "two", "three", "four", ""]


@pytest.fixture
def fake_encoder(monkeypatch):
    """embed_texts with a fake 8-wide encoder; the disk cache on, in a fresh folder per test."""
    calls: list[list[str]] = []

    def fake(model_path, texts, max_length, token_budget):
        calls.append(list(texts))
        return fake_vectors(texts)

    monkeypatch.setattr(embed, "_encode_uncached", fake)
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    embed._CACHE.clear()
    embed._DISK.clear()
    yield calls
    embed._CACHE.clear()
    embed._DISK.clear()


def _namespace(ckpt: Path, root: Path) -> EmbeddingCache:
    return EmbeddingCache(root, checkpoint_fingerprint(ckpt), 32)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _keys(texts) -> np.ndarray:
    from jigsaw_kit.methods.embed_cache import _text_key

    return np.array([_text_key(t) for t in texts], dtype="S64")


def _embed_fresh(ckpt: Path) -> np.ndarray:
    embed._CACHE.clear()
    embed._DISK.clear()
    return embed.embed_texts(ckpt, TEXTS, max_length=32)


def test_a_chunk_of_another_width_is_a_miss_and_removed(tmp_path, monkeypatch, fake_encoder, caplog):
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_checkpoint(tmp_path / "ckpt")
    ns = _namespace(ckpt, tmp_path / "cache")
    wide = ns.put(TEXTS, fake_vectors(TEXTS, dim=12))  # written by another encoder build, same fingerprint
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.embed_cache"):
        got = _embed_fresh(ckpt)
    assert np.array_equal(got, fake_vectors(TEXTS)) and fake_encoder == [sorted(TEXTS)]
    assert not wide.exists() and "12 wide" in caplog.text
    assert np.array_equal(_embed_fresh(ckpt), got) and len(fake_encoder) == 1  # the good chunk now serves


def test_a_folder_where_a_chunk_should_be_is_a_miss(tmp_path, monkeypatch, fake_encoder, caplog):
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_checkpoint(tmp_path / "ckpt")
    ns = _namespace(ckpt, tmp_path / "cache")
    (ns.folder / ("f" * 32 + ".npz")).mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.embed_cache"):
        got = _embed_fresh(ckpt)
    assert np.array_equal(got, fake_vectors(TEXTS)) and "not a file" in caplog.text
    assert (ns.folder / ("f" * 32 + ".npz")).is_dir()  # not the cache's own file: left alone
    assert prune(tmp_path / "cache", max_bytes=0) >= 0 and cache_report(tmp_path / "cache")["namespaces"]


GOOD = fake_vectors(TEXTS)
CHUNKS = {  # every way a chunk file can be other than the cache wrote it (the good vectors, so a hit would pass)
    "empty": lambda: b"",
    "garbage": lambda: b"PK\x03\x04 not a zip",
    "npy-not-npz": lambda: (lambda b: (np.save(b, GOOD), b.getvalue())[1])(io.BytesIO()),
    "no-keys": lambda: _npz(vectors=GOOD),
    "no-vectors": lambda: _npz(keys=_keys(TEXTS)),
    "keys-unicode": lambda: _npz(keys=_keys(TEXTS).astype("U64"), vectors=GOOD),
    "keys-int": lambda: _npz(keys=np.arange(len(TEXTS)), vectors=GOOD),
    "keys-2d": lambda: _npz(keys=_keys(TEXTS).reshape(-1, 1), vectors=GOOD),
    "float64": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD.astype(np.float64)),
    "float16": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD.astype(np.float16)),
    "vectors-1d": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD[:, 0]),
    "vectors-3d": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD[:, None, :]),
    "fewer-vectors": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD[:-1]),
    "wider": lambda: _npz(keys=_keys(TEXTS), vectors=fake_vectors(TEXTS, dim=9)),
    "narrower": lambda: _npz(keys=_keys(TEXTS), vectors=GOOD[:, :4].copy()),
    "pickled": lambda: _npz(keys=np.array(list(_keys(TEXTS)), dtype=object), vectors=GOOD),
}


@FUZZ
@given(
    kinds=st.lists(st.sampled_from([*CHUNKS, "cut", "folder", "good"]), min_size=1, max_size=4),
    cut=st.floats(0, 1),
)
def test_fuzz_cache_chunks_never_cost_the_run(kinds, cut):
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setenv("JIGSAW_KIT_CACHE_DIR", str(Path(d) / "cache"))
        mp.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
        mp.setattr(embed, "_encode_uncached", lambda m, texts, L, b: fake_vectors(texts))
        ckpt = make_checkpoint(Path(d) / "ckpt")
        ns = _namespace(ckpt, Path(d) / "cache")
        ns.folder.mkdir(parents=True)
        for i, kind in enumerate(kinds):
            f = ns.folder / f"{i:032x}.npz"
            if kind == "folder":
                f.mkdir()
            elif kind == "good":
                f.write_bytes(_npz(keys=_keys(TEXTS[:3]), vectors=GOOD[:3]))
            elif kind == "cut":
                raw = _npz(keys=_keys(TEXTS), vectors=GOOD)
                f.write_bytes(raw[: int(cut * (len(raw) - 1))])
            else:
                f.write_bytes(CHUNKS[kind]())
        assert np.array_equal(_embed_fresh(ckpt), GOOD)  # what --no-cache gives, bit for bit
        assert np.array_equal(_embed_fresh(ckpt), GOOD)  # and again, once the bad chunks are gone
        for i, kind in enumerate(kinds):
            f = ns.folder / f"{i:032x}.npz"
            assert f.exists() == (kind in ("good", "folder")), kind  # the cache's own bad files are removed
        cache_report(Path(d) / "cache")
        prune(Path(d) / "cache", max_bytes=0)


# --- the auto plan decides as the run will ---------------------------------------------------------------


def test_auto_plan_skips_a_sentence_encoder_transformers_cannot_load(tmp_path):
    from jigsaw_kit.core.errors import KitError
    from jigsaw_kit.kaggle import discover

    from .test_kaggle_auto import MASKED_LM, checkpoint

    odd = checkpoint(tmp_path / "datasets" / "me" / "odd", {"model_type": "my-own-encoder"}, "modules.json")
    ok = checkpoint(tmp_path / "datasets" / "me" / "e5", {"model_type": "bert"}, "modules.json")
    llm = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}
    checkpoint(tmp_path / "datasets" / "me" / "qwen", llm)
    members, found, _ = discover.auto_members(tmp_path, MASKED_LM)
    by_path = {f.path: f for f in found}
    assert not by_path[odd].roles and "my-own-encoder" in by_path[odd].why and "not a text model" in by_path[odd].why
    assert by_path[ok].roles and by_path[tmp_path / "datasets" / "me" / "qwen"].roles == (discover.LORA,)
    planned = [str(v) for m in members for v in (m.overrides.get("model"), *m.overrides.get("encoders", ()))]
    assert str(odd) not in planned and str(ok) in planned
    lines = discover.describe(found, members, "", tmp_path)
    assert any(line.strip().startswith(f"skipped  {odd}") for line in lines)
    # the same check the embedding member runs at load time
    from jigsaw_kit.core.checkpoints import text_model_problem

    assert text_model_problem("my-own-encoder") and text_model_problem("bert") is None
    with pytest.raises(KitError, match="not a text model transformers knows"):
        embed._load_encoder(odd, 32)
