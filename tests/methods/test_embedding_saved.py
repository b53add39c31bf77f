"""A saved embedding run (methods/embedding/saved.py): folders and a small JSON, no training rows; an old
pickle or a folder mixing two fits is refused with what to do."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from jigsaw_kit import pipeline
from jigsaw_kit.core.config import load_config, save_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.contrastive import ContrastiveHybrid
from jigsaw_kit.methods.embedding import encoders
from jigsaw_kit.methods.embedding.tune import EncoderTune
from jigsaw_kit.methods.hybrid import HybridRuleModel

from ..conftest import ROOT, fake_checkpoint
from .test_hybrid import TRAIN, fake_embed
from .test_hybrid_encoders import ASK

RICH = {"knn_k": "3", "centroid_features": "true", "embed_c_grid": "0.3,3", "pseudo_share": "0.2"}


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)


def fitted(tmp_path: Path, overrides: dict[str, str] | None = None, name: str = "cpu-hybrid") -> tuple[Path, object]:
    """A run folder as `jigsaw-kit train` leaves it: config.yaml beside the saved method."""
    cfg = load_config(name, overrides or {})
    run = tmp_path / "run"
    pipeline.fit(cfg, TRAIN, run, unlabelled=ASK)
    return run, cfg


def test_a_run_is_a_json_the_heads_and_the_lookup_with_no_training_text_in_them(tmp_path):
    run, cfg = fitted(tmp_path, RICH)
    assert {"recipe.json", "heads.joblib", "lookup.json", "config.yaml"} <= {f.name for f in run.iterdir()}
    meta = json.loads((run / "recipe.json").read_text())
    assert meta["method"] == "hybrid" and meta["encoders"][0]["checkpoint"] == cfg.options.model
    assert meta["heads"][0] == {"knn_k": 3, "knn_weight": 0.5, "centroid_features": True}
    assert meta["pseudo_share"] == 0.2 and meta["config"]["knn_k"] == 3
    saved = b"".join(f.read_bytes() for f in run.iterdir() if f.is_file() and f.name != "config.yaml")
    leaked = [t for t in pd.concat([TRAIN, ASK])["text"] if t.encode() in saved]
    assert leaked == []  # the lookup keeps hashes; the heads keep coefficients, n-gram vocabularies, vectors
    lookup = json.loads((run / "lookup.json").read_text())
    assert len(lookup["positives"]) + len(lookup["negatives"]) == TRAIN["text"].nunique()


def test_a_loaded_run_predicts_what_the_fitted_one_did(tmp_path):
    run, cfg = fitted(tmp_path, RICH)
    fresh = HybridRuleModel(cfg).fit(TRAIN, unlabelled=ASK)
    np.testing.assert_array_equal(HybridRuleModel.load(run, cfg).predict(ASK), fresh.predict(ASK))
    HybridRuleModel.check_saved(run, cfg)  # what `predict --run-dir` checks at start


@pytest.mark.parametrize(
    ("cls", "old"), [(HybridRuleModel, "hybrid.joblib"), (ContrastiveHybrid, "contrastive.joblib")]
)
def test_a_run_the_older_kit_pickled_says_to_train_again(tmp_path, cls, old):
    cfg = load_config("cpu-hybrid" if cls is HybridRuleModel else "cpu-contrastive")
    run = tmp_path / "old-run"
    run.mkdir()
    save_config(cfg, run / "config.yaml")
    joblib.dump({"a whole": "pickled model"}, run / old)
    for call in (cls.load, cls.check_saved):
        with pytest.raises(KitError, match=rf"{old} was saved by an older jigsaw-kit version.*Train again"):
            call(run, cfg)
    with pytest.raises(KitError, match="recipe.json missing: train first"):
        cls.load(tmp_path / "empty", cfg)


def test_a_config_yaml_of_another_fit_is_refused_naming_the_key(tmp_path):
    run, cfg = fitted(tmp_path)
    edited = load_config("cpu-hybrid", {"tfidf_weight": "0.3"})
    save_config(edited, run / "config.yaml")
    with pytest.raises(KitError, match=r"fitted with tfidf_weight=0\.5.*says tfidf_weight=0\.3.*mixes two runs"):
        pipeline.check_run_dir(run)


def test_heads_or_lookup_of_another_fit_are_refused(tmp_path):
    run, cfg = fitted(tmp_path)
    other, _ = fitted(tmp_path / "other")
    for name in ("heads.joblib", "lookup.json"):
        kept = (run / name).read_bytes()
        (run / name).write_bytes((other / name).read_bytes())
        with pytest.raises(KitError, match=f"{name} comes from another fit.*mixes two runs"):
            HybridRuleModel.load(run, cfg)
        (run / name).write_bytes(kept)
    HybridRuleModel.load(run, cfg)


@pytest.mark.parametrize("damage", ["cut", "missing"])
def test_damaged_files_say_to_train_again(tmp_path, damage):
    run, cfg = fitted(tmp_path)
    heads = run / "heads.joblib"
    if damage == "cut":
        heads.write_bytes(heads.read_bytes()[:100])
    else:
        heads.unlink()
    with pytest.raises(KitError, match="heads.joblib cannot be loaded.*Train again"):
        HybridRuleModel.load(run, cfg)
    (run / "recipe.json").write_text('{"format": "jigsaw-kit emb')
    with pytest.raises(KitError, match="recipe.json cannot be read.*cut short or damaged"):
        HybridRuleModel.load(run, cfg)


def test_the_tuned_encoder_lives_in_the_run_and_another_fits_encoder_is_refused(tmp_path, monkeypatch):
    """contrastive with a stand-in tune: its encoder/ folder is part of the run, tied to it by its fingerprint."""
    count = []

    def fake_train(self, base, data, out_dir):
        count.append(1)
        fake_checkpoint(out_dir)
        (out_dir / "vocab.txt").write_text(f"[PAD]\n{len(count)}\n")
        return {"stopped_early": False, "stopped_at_step": None, "planned_steps": 2}

    monkeypatch.setattr(EncoderTune, "_train", fake_train)
    cfg = load_config("cpu-contrastive", {"embed_backend": "torch-fp32"})
    model = ContrastiveHybrid(cfg).fit(TRAIN, tmp_path / "work")
    model.save(tmp_path / "run")  # tuned in work/: copied in
    meta = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert meta["encoders"][0]["in_run"] == "encoder" and meta["tune"]["options"]["steps"] == 20
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)  # the run folder moves: the encoder is read from where it is now
    loaded = ContrastiveHybrid.load(moved, cfg)
    assert loaded.recipe.encoders[0].path() == moved / "encoder"
    np.testing.assert_array_equal(loaded.predict(ASK), model.predict(ASK))
    (moved / "encoder" / "vocab.txt").write_text("[PAD]\nanother tune\n")
    with pytest.raises(KitError, match="encoder/ .the tuned encoder. comes from another fit"):
        ContrastiveHybrid.load(moved, cfg)
    (moved / "encoder" / "config.json").unlink()
    with pytest.raises(KitError, match="holds no tuned encoder"):
        ContrastiveHybrid.load(moved, cfg)
