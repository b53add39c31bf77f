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

from ..methods.test_embed_cache import fake_vectors, make_checkpoint

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

    from ..kaggle.test_kaggle_auto import MASKED_LM, checkpoint

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


# --- predict --run-dir: a run folder with files missing, cut short or from another config ------------------


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory):
    """A tfidf-lr run on the sample data: its processed folder, run folder and the submission it predicts."""
    from jigsaw_kit.cli import main

    from ..conftest import SAMPLE

    d = tmp_path_factory.mktemp("tfidf-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JIGSAW_KIT_EMBED_CACHE", "0")
        assert main(["build", "--data-dir", str(SAMPLE), "--config", "tfidf-lr", "--out", str(d / "processed")]) == 0
        assert main(["train", "--processed", str(d / "processed"), "--config", "tfidf-lr", "--run-dir",
                     str(d / "run")]) == 0  # fmt: skip
        assert main(["predict", "--processed", str(d / "processed"), "--run-dir", str(d / "run"), "--output",
                     str(d / "want.csv")]) == 0  # fmt: skip
    return d


def _predict(run: Path, processed: Path, out: Path) -> tuple[int, str]:
    import contextlib

    from jigsaw_kit.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", "--processed", str(processed), "--run-dir", str(run), "--output", str(out)])
    return rc, err.getvalue().strip()


def _damage_run(run: Path, kind: str, cut: float, value) -> None:
    import yaml

    yml, model = run / "config.yaml", run / "tfidf.joblib"
    raw = {"config.yaml": yml, "tfidf.joblib": model}
    if kind.startswith("cut-"):
        f = raw[kind[4:]]
        f.write_bytes(f.read_bytes()[: int(cut * (f.stat().st_size - 1))])
    elif kind.startswith("missing-"):
        raw[kind[8:]].unlink()
    elif kind.startswith("folder-"):
        raw[kind[7:]].unlink()
        raw[kind[7:]].mkdir()
    elif kind == "garbage-model":
        model.write_bytes(b"\x80\x04garbage" * 10)
    elif kind == "other-pickle":
        import joblib

        joblib.dump({"not": "a model"}, model)
    elif kind == "non-utf8-config":
        yml.write_bytes(b"\xff\xfe method: x")
    elif kind == "config-value":  # another config's value under a known key: the folder mixes two runs
        key, v = value
        cfg = yaml.safe_load(yml.read_text())
        cfg[key] = v
        yml.write_text(yaml.safe_dump(cfg))
    elif kind == "config-yaml":
        yml.write_text(value)


RUN_DAMAGE = ["cut-config.yaml", "cut-tfidf.joblib", "missing-config.yaml", "missing-tfidf.joblib",
              "folder-config.yaml", "folder-tfidf.joblib", "garbage-model", "other-pickle", "non-utf8-config",
              "config-value", "config-yaml"]  # fmt: skip
CONFIG_VALUES = st.sampled_from(
    [("tfidf_c", 1.0), ("tfidf_c", 4.0), ("method", "hybrid"), ("template", "body-only"), ("seed", 7), ("seed", 42),
     ("learning_rate", -1e-5), ("epochs", float("nan")), ("tfidf_max_features", 0), ("bogus_key", 1)]
)  # fmt: skip
YAML_TEXTS = st.sampled_from(["", "[1, 2]", "method: [", "name: x\nmethod: tfidf-lr\n", "!!python/object:os.system {}",
                              "1: 2\nmethod: tfidf-lr", "a: &a [*a]"])  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(RUN_DAMAGE), cut=st.floats(0, 1), value=CONFIG_VALUES, text=YAML_TEXTS)
def test_fuzz_predict_run_dir(tfidf_run, kind, cut, value, text):
    import shutil

    import pandas as pd

    from jigsaw_kit.core.errors import KitError
    from jigsaw_kit.pipeline import check_run_dir

    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        shutil.copytree(tfidf_run / "run", run)
        _damage_run(run, kind, cut, text if kind == "config-yaml" else value)
        try:  # the start-up check alone decides most cases, fast; what it passes must then predict as before
            check_run_dir(run)
        except KitError as e:
            assert str(run) in str(e) and "\n" not in str(e), e
            return
        rc, err = _predict(run, tfidf_run / "processed", Path(d) / "sub.csv")
        if rc == 0:  # only a harmless change may predict, and then exactly as before
            pd.testing.assert_frame_equal(pd.read_csv(Path(d) / "sub.csv"), pd.read_csv(tfidf_run / "want.csv"))
        else:
            assert rc == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and str(run) in err, err
            assert not (Path(d) / "sub.csv").exists()


@pytest.mark.parametrize("kind", ["cut-tfidf.joblib", "other-pickle", "config-value"])
def test_predict_run_dir_damage_is_one_error_line(tfidf_run, tmp_path, kind):
    import shutil

    shutil.copytree(tfidf_run / "run", tmp_path / "run")
    _damage_run(tmp_path / "run", kind, 0.5, ("tfidf_c", 1.0))
    rc, err = _predict(tmp_path / "run", tfidf_run / "processed", tmp_path / "sub.csv")
    assert rc == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err


# --- config YAML and --set: unknown keys, wrong types, out-of-range values ---------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["1e-5", "-1", "nan", "inf", "true", "a,b", "", "rule-body"]),
)  # fmt: skip
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


def _known_keys() -> list[str]:
    from jigsaw_kit.core.config import COMMON, OPTIONS, options_class

    return sorted({*COMMON, *(k for m in OPTIONS for k in options_class(m).keys())})  # every method's keys


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    pairs=st.dictionaries(
        st.one_of(st.sampled_from(_known_keys()), st.text(max_size=6), st.integers()), VALUES, max_size=4
    ),  # fmt: skip
    as_set=st.booleans(),
)
def test_fuzz_config_yaml_and_set(pairs, as_set):
    import math

    import yaml

    from jigsaw_kit.core.config import load_config, parse_overrides
    from jigsaw_kit.core.errors import KitError

    with tempfile.TemporaryDirectory() as d:
        try:
            if as_set:
                cfg = load_config("tfidf-lr", parse_overrides([f"{k}={v}" for k, v in pairs.items()]))
            else:
                (Path(d) / "c.yaml").write_text(yaml.safe_dump({"method": "tfidf-lr", **pairs}))
                cfg = load_config(str(Path(d) / "c.yaml"))
        except KitError as e:
            assert str(e).strip()
            return
    # accepted: every number is in range (validate() ran), so no run starts on a value that cannot be right
    assert 0 < cfg.options.tfidf_c < math.inf and cfg.options.tfidf_max_features > 0 and 0 <= cfg.seed < 2**32


@pytest.mark.parametrize(
    "config, pair, says",
    [("cpu-minilm", "learning_rate=-1e-5", "learning_rate must"),
     ("cpu-minilm", "learning_rate=nan", "learning_rate must"),
     ("tfidf-lr", "tfidf_c=nan", "tfidf_c must"), ("cpu-minilm", "epochs=nan", "set epochs > 0"),
     ("cpu-minilm", "weight_decay=-1", "weight_decay must"), ("tfidf-lr", "seed=-1", "seed must"),
     ("tfidf-lr", "tfidf_max_features=0", "tfidf_max_features must"), ("cpu-hybrid", "embed_c=inf", "embed_c must")],
)  # fmt: skip
def test_out_of_range_values_are_refused(config, pair, says):
    from jigsaw_kit.core.config import load_config, parse_overrides
    from jigsaw_kit.core.errors import KitError

    with pytest.raises(KitError, match=says):
        load_config(config, parse_overrides([pair]))


def test_yaml_keys_that_are_numbers_and_non_utf8_files(tmp_path):
    from jigsaw_kit.core.config import load_config
    from jigsaw_kit.core.errors import KitError

    (tmp_path / "a.yaml").write_text("1: 2\nmethod: tfidf-lr\n")
    with pytest.raises(KitError, match="1 is not an option of method tfidf-lr"):
        load_config(str(tmp_path / "a.yaml"))
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe method: tfidf-lr")
    with pytest.raises(KitError, match="b.yaml"):
        load_config(str(tmp_path / "b.yaml"))
