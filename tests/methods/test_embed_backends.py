"""embed_backend: where the sentence encoder runs (methods/embed_backends.py), checked on the vendored MiniLM.

torch-fp32 must give exactly the vectors the kit gave before the key existed; the others must agree with it
closely; exports are cached; a machine without onnxruntime (Kaggle's image may lack it) falls back, never fails.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods import embed, embed_backends
from jigsaw_kit.methods.embed_backends import pooling_tag, resolve_backend, usable
from jigsaw_kit.methods.embed_cache import EmbeddingCache, checkpoint_fingerprint
from jigsaw_kit.methods.options import EMBED_BACKENDS

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "weights" / "all-MiniLM-L6-v2"
TEXTS = [
    "Buy cheap watches now, free shipping, click the link in my profile!",
    "You should sue them; in my state that counts as breach of contract, talk to a lawyer.",
    "I love this subreddit, the cat pictures always make my day.",
    "The weather here has been terrible all week.",
    "short",
    "Check out my onlyfans for exclusive content " * 8,
]
needs_minilm = pytest.mark.usefixtures("vendored_minilm")


@pytest.fixture(scope="module")
def vendored_minilm() -> Path:
    """The real MiniLM under weights/, vendored from its pip package on first use (as `jigsaw-kit run` does): these
    tests must run in CI's fresh clone, not skip there."""
    from jigsaw_kit.core.checkpoints import resolve_model

    path = resolve_model("all-MiniLM-L6-v2")
    assert path.resolve() == MINILM.resolve() and (MINILM / "model.safetensors").is_file()
    return path


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    """One export folder for the module: the fp32 export (~10 s) is made once and reused by the int8 tests."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(autouse=True)
def fresh(monkeypatch, onnx_dir):
    """A new process's state: no in-process vectors, sessions or warnings; exports in the module's folder."""
    monkeypatch.setenv("JIGSAW_KIT_ONNX_DIR", str(onnx_dir))
    monkeypatch.setattr(embed_backends, "_on_gpu", lambda: False)

    def clear():
        embed._CACHE.clear()
        embed._DISK.clear()
        embed._FORWARDS.clear()
        embed._BROKEN.clear()
        embed_backends._WARNED.clear()

    clear()
    yield
    clear()


def _old_embed(texts: list[str], max_length: int = 64, token_budget: int = 16384) -> np.ndarray:
    """The kit's embedding loop as it was before embed_backend existed, verbatim: the torch-fp32 reference."""
    import torch

    from jigsaw_kit.methods.batching import token_budget_batches

    tokenizer, model = embed.load_encoder(MINILM, max_length)
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for idx in token_budget_batches(lengths, token_budget):
            feats = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")
            hidden = model(**feats).last_hidden_state.float()
            mask = feats["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return out


def test_backend_key_is_validated_and_the_default_takes_the_measured_choice():
    assert load_config("cpu-hybrid").options.embed_backend == "torch-fp32"
    assert load_config("cpu-contrastive").options.embed_backend == "auto"  # the CPU default: bf16 where the units are
    assert embed_backends.AUTO_ORDER == ("torch-bf16", "torch-fp32")
    for b in EMBED_BACKENDS:
        assert load_config("cpu-hybrid", {"embed_backend": b}).options.embed_backend == b
    with pytest.raises(KitError, match="embed_backend must be one of"):
        load_config("cpu-hybrid", {"embed_backend": "onnx-int4"})
    with pytest.raises(KitError, match="embed_backend must be one of"):
        resolve_backend("tensorrt")


def test_cache_namespaces_differ_per_backend(tmp_path):
    tags = {b: pooling_tag(b) for b in EMBED_BACKENDS if b != "auto"}
    assert tags["torch-fp32"] == "mean"  # the vectors every earlier run cached stay valid
    folders = {EmbeddingCache(tmp_path, "ab" * 32, 64, t).folder for t in tags.values()}
    assert len(folders) == len(tags)


def test_auto_and_onnx_fall_back_where_units_or_a_gpu_are_missing(monkeypatch):
    assert "avx512_vnni" in usable("onnx-int8", frozenset({"avx2"}))
    assert "amx_bf16" in usable("torch-bf16", frozenset({"avx2"}))
    assert usable("onnx-int8", frozenset({"amx_int8"})) in (None, "onnxruntime, onnx, onnxscript not installed")
    monkeypatch.setattr(embed_backends, "AUTO_ORDER", ("onnx-int8", "torch-bf16", "torch-fp32"))
    monkeypatch.setattr(embed_backends, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_backend("auto") == "torch-fp32"  # neither VNNI nor BF16 units: the reference
    assert resolve_backend("torch-bf16") == "torch-bf16"  # an explicit choice is kept: slow, but it runs
    monkeypatch.setattr(embed_backends, "_on_gpu", lambda: True)
    assert resolve_backend("auto") == "torch-fp32"
    assert resolve_backend("onnx-int8") == "torch-fp32"  # onnxruntime here is the CPU build


def test_missing_onnxruntime_falls_back_to_torch_with_one_warning(monkeypatch, caplog):
    real = embed_backends.importlib.util.find_spec
    monkeypatch.setattr(
        embed_backends.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    monkeypatch.setattr(embed_backends, "AUTO_ORDER", ("onnx-int8", "torch-fp32"))
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.embed_backends"):
        assert resolve_backend("onnx-int8") == resolve_backend("onnx-int8") == "torch-fp32"
        assert resolve_backend("auto") == "torch-fp32"
    said = [r.getMessage() for r in caplog.records]
    assert sum("onnx-int8: onnxruntime not installed; using torch-fp32" in m for m in said) == 1, said


@needs_minilm
def test_torch_fp32_vectors_are_the_old_loops_bit_for_bit():
    old = _old_embed(TEXTS)
    for kwargs in ({}, {"backend": "torch-fp32"}):
        embed._CACHE.clear()
        new = embed.embed_texts(MINILM, TEXTS, max_length=64, **kwargs)
        assert np.array_equal(new.view(np.uint32), old.view(np.uint32))


@needs_minilm
@pytest.mark.parametrize(
    "backend, mean_cos, min_cos",
    [
        ("torch-bf16", 0.99, 0.99),
        ("onnx-fp32", 0.9999, 0.9999),
        # int8 weights per channel and activations per batch: ~0.99 mean, 0.98 min measured on 200 texts (0.95 /
        # 0.92 per tensor); what decides is the lb-proxy AUC (issue 26), this only catches a broken export
        ("onnx-int8", 0.98, 0.95),
    ],
)
def test_backend_vectors_agree_with_torch_fp32(backend, mean_cos, min_cos, monkeypatch):
    if usable(backend, frozenset(embed_backends.INT8_FLAGS | embed_backends.BF16_FLAGS)):
        pytest.skip(f"{backend}: {usable(backend, frozenset())}")
    ref = embed.embed_texts(MINILM, TEXTS, max_length=64)
    got = embed.embed_texts(MINILM, TEXTS, max_length=64, backend=backend)
    cos = (ref * got).sum(axis=1)
    assert cos.mean() > mean_cos and cos.min() > min_cos, cos
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert (embed._identity(MINILM), backend) not in embed._BROKEN  # it really ran, no fallback


@needs_minilm
@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_export_is_cached_by_checkpoint_content_and_reused(backend, monkeypatch, onnx_dir):
    if embed_backends.missing_packages(backend):
        pytest.skip("onnx packages not installed")
    path, _ = embed_backends.export(MINILM, backend)
    assert path.parent.parent == onnx_dir and checkpoint_fingerprint(MINILM)[:32] in path.parent.name
    assert backend in path.parent.name and f"opset{embed_backends.OPSET}" in path.parent.name
    stamp = path.stat().st_mtime_ns

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(embed_backends, "_export_fp32", no_export)
    again, costs = embed_backends.export(MINILM, backend)
    assert again == path and costs == {} and path.stat().st_mtime_ns == stamp
    x = embed.embed_texts(MINILM, TEXTS[:2], max_length=64, backend=backend)  # a new process: loads, no export
    assert x.shape == (2, 384) and (embed._identity(MINILM), backend) not in embed._BROKEN


@needs_minilm
def test_a_failing_export_falls_back_to_torch_and_caches_under_torch(monkeypatch, tmp_path, caplog):
    if embed_backends.missing_packages("onnx-fp32"):
        pytest.skip("onnx packages not installed")
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "vectors"))
    monkeypatch.setenv("JIGSAW_KIT_ONNX_DIR", str(tmp_path / "exports"))

    def broken(*a, **k):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(embed_backends, "_export_fp32", broken)
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.embed"):
        x = embed.embed_texts(MINILM, TEXTS[:3], max_length=64, backend="onnx-fp32")
        y = embed.embed_texts(MINILM, TEXTS[3:], max_length=64, backend="onnx-fp32")  # no second try
    assert sum("exporter says no" in r.getMessage() for r in caplog.records) == 1
    embed._CACHE.clear()
    ref = embed.embed_texts(MINILM, TEXTS, max_length=64)
    assert np.array_equal(np.vstack([x, y]), ref)
    names = {p.name.split("-", 1)[1] for p in (tmp_path / "vectors").iterdir()}
    assert names == {"L64-mean"}  # torch's vectors never land in the onnx namespace


@needs_minilm
def test_backends_keep_their_own_disk_namespace(monkeypatch, tmp_path):
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "1")
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path / "vectors"))
    a = embed.embed_texts(MINILM, TEXTS[:2], max_length=64)
    b = embed.embed_texts(MINILM, TEXTS[:2], max_length=64, backend="torch-bf16")
    assert not np.array_equal(a, b)  # not served from fp32's vectors
    names = {p.name.split("-", 1)[1] for p in (tmp_path / "vectors").iterdir()}
    assert names == {"L64-mean", "L64-mean_torch_bf16"}
    embed._CACHE.clear()
    embed._DISK.clear()
    assert np.array_equal(embed.embed_texts(MINILM, TEXTS[:2], max_length=64, backend="torch-bf16"), b)


@needs_minilm
def test_embed_bench_reports_each_backend_against_torch_fp32(tmp_path, capsys):
    from jigsaw_kit.evaluate import embed_bench

    out = tmp_path / "bench.json"
    sample = ROOT / "data" / "sample"
    assert (
        embed_bench.main(
            [
                "--data-dir",
                str(sample),
                "--texts",
                "24",
                "--backends",
                "torch-fp32",
                "torch-bf16",
                "--config",
                "cpu-hybrid",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    ran = {b["backend"]: b for b in report["backends"]}
    assert set(ran) == {"torch-fp32", "torch-bf16"} and not any("error" in b for b in ran.values()), ran
    assert ran["torch-fp32"]["cos_min"] > 0.99999 and ran["torch-bf16"]["cos_mean"] > 0.99
    assert all(ran[b]["texts_per_s"] > 0 and ran[b]["peak_rss_mb"] > 0 for b in ran)
    assert {"tokenize_s", "tfidf_fit_s", "tfidf_transform_s", "tfidf_regressions_s"} <= set(report["heads"])
    printed = capsys.readouterr().out
    assert "machine:" in printed and "--set embed_backend=torch-bf16" in printed and "jigsaw-kit compare" in printed


def test_prune_exports_keeps_the_most_recently_used_and_nothing_it_did_not_write(tmp_path):
    import os

    made = []
    for i in range(6):
        f = tmp_path / f"{i:032x}-onnx-int8-opset18-torch2_cpu-ort1"
        f.mkdir()
        os.utime(f, ns=(i * 10**9, i * 10**9))
        made.append(f)
    (tmp_path / "mine").mkdir()
    removed = embed_backends.prune_exports(tmp_path, keep=made[0], most=3)
    assert sorted(removed) == made[1:4]  # the oldest go; the one just written stays whatever its age
    assert {f.name for f in tmp_path.iterdir()} == {made[0].name, made[4].name, made[5].name, "mine"}
