"""Each part of the embedding recipe on its own (methods/embedding/): small inputs, the vendored MiniLM once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embedding import encoders
from jigsaw_kit.methods.embedding.encoders import FrozenEncoder
from jigsaw_kit.methods.embedding.heads import EncoderHead, TfidfHead, embedding_lr
from jigsaw_kit.methods.embedding.lookup import BAND, ExactLookup, lookup_key
from jigsaw_kit.methods.embedding.pseudo import PseudoLabels
from jigsaw_kit.methods.embedding.recipe import EmbeddingRecipe
from jigsaw_kit.methods.hybrid import recipe_from
from jigsaw_kit.methods.options import TuneOptions
from jigsaw_kit.methods.rulewise import RuleRegressions
from jigsaw_kit.methods.tfidf import TfidfRuleModel

from ..conftest import ROOT, fake_checkpoint
from .test_hybrid import LEGAL, SPAM, TRAIN, fake_embed, rows

MINILM = ROOT / "weights" / "all-MiniLM-L6-v2"
Y, RULES = TRAIN["label"].to_numpy(), TRAIN["rule"]


def test_frozen_encoder_embeds_with_its_own_settings_and_falls_back_to_where_it_resolved(tmp_path, monkeypatch):
    calls = []

    def recording(model_path, texts, max_length, token_budget=16384, backend="torch-fp32"):
        calls.append((Path(model_path), list(texts), max_length, token_budget, backend))
        return fake_embed(model_path, texts, max_length)

    monkeypatch.setattr(encoders, "embed_texts", recording)
    folder = fake_checkpoint(tmp_path / "enc")
    monkeypatch.chdir(tmp_path)
    enc = FrozenEncoder("enc", max_length=77, token_budget=999, backend="torch-bf16").pinned()
    assert enc.fitted_at == str(folder.resolve())
    x = enc.embed(pd.Series(["buy free", "a cat"]))
    assert x.shape == (2, 9) and calls == [(Path("enc"), ["buy free", "a cat"], 77, 999, "torch-bf16")]
    assert list(enc.rule_vectors([SPAM, LEGAL, SPAM])) == sorted([SPAM, LEGAL])  # each rule once, sorted
    monkeypatch.chdir(ROOT)  # "enc" resolves no more: the folder of the fit serves
    assert enc.path() == folder.resolve()
    gone = FrozenEncoder("enc", 77, 999, fitted_at=str(tmp_path / "gone"))
    with pytest.raises(KitError, match="no checkpoint"):
        gone.path()
    assert enc.at(tmp_path / "tuned").checkpoint == str(tmp_path / "tuned")


def test_frozen_minilm_gives_unit_vectors_that_tell_topics_apart():
    enc = FrozenEncoder(str(MINILM), max_length=64, token_budget=4096)
    x = enc.embed(["you should sue them in court", "see a lawyer about the lawsuit", "my cat sleeps all day"])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.2


def test_tfidf_head_is_the_tfidf_lr_method(tmp_path):
    cfg = load_config("tfidf-lr")
    head = TfidfHead(cfg.options.tfidf_max_features, cfg.options.tfidf_c, cfg.seed).fit(TRAIN["text"], Y, RULES)
    ask = rows([(SPAM, "free click", -1), (LEGAL, "sue in court", -1), ("New rule", "buy", -1)])
    np.testing.assert_array_equal(head.score(ask["text"], ask["rule"]), TfidfRuleModel(cfg).fit(TRAIN).predict(ask))


def test_an_encoder_head_without_options_is_a_plain_per_rule_lr():
    x = fake_embed(None, list(TRAIN["text"]), 0)
    head = EncoderHead(embedding_lr(3.0, 42)).fit(x, Y, RULES)
    plain = RuleRegressions(lambda: LogisticRegression(C=3.0, max_iter=3000, random_state=42), "x").fit(x, Y, RULES)
    np.testing.assert_array_equal(head.score(x, RULES), plain.predict(x, RULES))
    assert head.centroids is None and head.knn is None


def test_an_encoder_head_mixes_its_knn_by_weight_and_puts_centroid_features_beside_the_embedding():
    x = fake_embed(None, list(TRAIN["text"]), 0)
    vecs = dict(zip([LEGAL, SPAM], fake_embed(None, [LEGAL, SPAM], 0)))
    head = EncoderHead(embedding_lr(3.0, 42), knn_k=4, knn_weight=0.25, centroid_features=True).fit(x, Y, RULES, vecs)
    assert head.lr.models[SPAM].coef_.shape == (1, x.shape[1] + 4)
    lr = head.lr.predict(np.hstack([x, head.centroids.features(x, RULES, vecs)]), RULES)
    np.testing.assert_allclose(head.score(x, RULES, vecs), 0.75 * lr + 0.25 * head.knn.predict(x, RULES))


def test_the_lookup_bands_labelled_rows_and_keeps_the_order_within_each_band():
    lookup = ExactLookup().fit(rows([(SPAM, "Known  Spam", 1), (SPAM, "known ok", 0), (SPAM, "known ok", 1)]))
    ask = rows([(SPAM, "known spam", -1), (SPAM, "KNOWN OK", -1), (SPAM, "new a", -1), (SPAM, "new b", -1)])
    p = np.array([0.2, 0.9, 0.3, 0.7])
    got = lookup.apply(ask, p)
    # "known ok" was labelled 0 then 1: the later row wins, as a dict built in row order does
    np.testing.assert_allclose(got, [1 - BAND + BAND * 0.2, 1 - BAND + BAND * 0.9, BAND + 0.8 * 0.3, BAND + 0.8 * 0.7])
    assert list(lookup.found(ask)) == [1, 1, -1, -1]
    saved = lookup.to_json()
    assert "spam" not in str(saved).lower() and len(saved["positives"]) == 2 and saved["negatives"] == []
    np.testing.assert_array_equal(ExactLookup.from_json(saved, Path("x")).apply(ask, p), got)
    np.testing.assert_array_equal(ExactLookup().apply(ask, p), p)  # nothing labelled: the scores as they are
    assert lookup_key(SPAM, "Known  Spam") == lookup_key(SPAM.upper(), "known spam")


def test_parts_refuse_bad_parameters():
    with pytest.raises(ValueError, match="share must be in"):
        PseudoLabels(0.5)
    recipe = recipe_from(load_config("cpu-hybrid"))
    with pytest.raises(ValueError, match="one head per encoder"):
        EmbeddingRecipe(recipe.tfidf, recipe.encoders * 2, recipe.heads, 0.5)


def test_recipe_from_maps_each_key_to_its_part():
    cfg = load_config(
        "cpu-hybrid",
        {"encoders": "x,y", "knn_k": "7", "knn_weight": "0.2", "embed_c": "2", "tfidf_c": "5", "tfidf_weight": "0.4"},
    )
    r = recipe_from(cfg)
    assert [e.checkpoint for e in r.encoders] == [cfg.options.model, "x", "y"]
    assert {(e.max_length, e.token_budget, e.backend) for e in r.encoders} == {(256, 16384, "torch-fp32")}
    assert [(h.knn_k, h.knn_weight, h.centroid_features) for h in r.heads] == [(7, 0.2, False)] * 3
    assert r.heads[0].make_lr().C == 2.0 and (r.tfidf.c, r.tfidf_weight) == (5.0, 0.4)
    assert r.lookup is not None and r.pseudo is None and r.tune is None
    assert recipe_from(load_config("cpu-hybrid", {"exact_lookup": "false"})).lookup is None


def test_contrastive_recipe_from_gives_the_tune_its_own_options():
    from jigsaw_kit.methods import contrastive

    cfg = load_config("cpu-triplet", {"tune.steps": "7", "batch_size": "8", "tune.learning_rate": "1e-4"})
    tune = contrastive.recipe_from(cfg).tune
    assert tune.options == TuneOptions(
        steps=7,
        batch_size=8,
        learning_rate=1e-4,
        warmup_ratio=0.1,
        freeze_layers=3,
        objective="triplets",
        precision="auto",  # cpu-contrastive's: bf16 where the CPU has the units
    )
    assert (tune.seed, tune.max_length) == (42, 128)
