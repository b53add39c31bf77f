"""The CPU default (hybrid.py, embed.py): per-rule TF-IDF + embedding regressions, exact lookup."""

import json

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.cli import main
from jigsaw_kit.core.config import load_config
from jigsaw_kit.methods import embed
from jigsaw_kit.methods.embedding import encoders
from jigsaw_kit.methods.embedding.lookup import digest, lookup_key
from jigsaw_kit.methods.hybrid import HybridRuleModel

from ..conftest import ROOT, SAMPLE

SPAM = "No Advertising: spam and referral links are not allowed."
LEGAL = "No legal advice: do not offer or request legal advice."


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


def fake_embed(model_path, texts, max_length, token_budget=16384, backend="torch-fp32"):
    """A stand-in encoder: a few keyword features, so the unit tests need no checkpoint."""
    words = ["buy", "free", "click", "lawyer", "court", "sue", "cat", "weather"]
    x = np.array([[t.lower().count(w) for w in words] + [1.0] for t in texts], dtype=float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rows(pairs: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["rule", "text", "label"]).assign(subreddit="x")


TRAIN = rows(
    [(SPAM, f"buy now click here free stuff {i}", 1) for i in range(6)]
    + [(SPAM, f"my cat likes the weather {i}", 0) for i in range(6)]
    + [(LEGAL, f"you should sue them in court {i}", 1) for i in range(6)]
    + [(LEGAL, f"nice weather for a cat {i}", 0) for i in range(6)]
)


def test_lookup_key_ignores_case_and_spacing():
    assert lookup_key(" Rule A ", "Hello   World\n") == lookup_key("rule a", "hello world")
    assert lookup_key("rule a", "hello world") != lookup_key("rule b", "hello world")


def test_lookup_puts_labelled_texts_above_and_below_every_model_score(monkeypatch):
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)
    model = HybridRuleModel(load_config("cpu-hybrid")).fit(TRAIN)
    # relabel: a known negative that reads like spam, a known positive that reads like small talk
    labels = model.recipe.lookup.labels
    labels[digest(lookup_key(SPAM, "buy now click here free stuff 0"))] = 0
    labels[digest(lookup_key(SPAM, "my cat likes the weather 0"))] = 1
    ask = rows(
        [
            (SPAM, "BUY now click  here free stuff 0", -1),  # known 0 (case/spacing differ)
            (SPAM, "my cat likes the weather 0", -1),  # known 1
            (SPAM, "free free click buy", -1),  # unknown, spammy
            (SPAM, "the weather and my cat", -1),  # unknown, benign
        ]
    )
    p = model.predict(ask)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[1] > p[2] > p[3] > p[0]  # lookup positives on top, negatives at the bottom, model order between


def test_without_lookup_it_is_the_mean_of_the_two_regressions(monkeypatch):
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)
    cfg = load_config("cpu-hybrid", {"exact_lookup": "false", "tfidf_weight": "0.25"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    assert model.recipe.lookup is None
    ask = TRAIN.iloc[:3]
    r = model.recipe
    expected = 0.25 * r.tfidf.score(ask["text"], ask["rule"]) + 0.75 * r.embedding_scores(ask)
    np.testing.assert_allclose(model.predict(ask), expected)


def test_unseen_rule_uses_the_all_rules_model_and_single_class_rule_is_constant(monkeypatch):
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)
    one_class = rows([("Only positives", f"buy buy {i}", 1) for i in range(3)])
    model = HybridRuleModel(load_config("cpu-hybrid")).fit(pd.concat([TRAIN, one_class], ignore_index=True))
    ask = rows([("Unseen rule", "buy free click now", -1), ("Unseen rule", "cat weather", -1)])
    p = model.predict(ask)
    assert p[0] > p[1]  # the all-rules model still ranks
    assert model.recipe.heads[0].lr.constant == model.recipe.tfidf.rules.constant == {"Only positives": 1.0}


def test_embed_texts_is_normalised_ordered_and_cached(monkeypatch):
    embed._CACHE.clear()
    calls = []
    real = embed._encode_uncached

    def counting(model_path, texts, max_length, token_budget):
        calls.append(list(texts))
        return real(model_path, texts, max_length, token_budget)

    monkeypatch.setattr(embed, "_encode_uncached", counting)
    path = ROOT / "weights" / "all-MiniLM-L6-v2"
    texts = ["a short one", "a much longer comment about legal advice and the court " * 3, "a short one"]
    x = embed.embed_texts(path, texts, max_length=64, token_budget=64)
    assert x.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(x[0], x[2])
    assert calls == [sorted(set(texts))]
    alone = embed.embed_texts(path, [texts[1]], max_length=64)  # cached: no second encoder call
    np.testing.assert_array_equal(alone[0], x[1])
    assert len(calls) == 1
    # batching must not change a vector: encode the long text alone, uncached
    embed._CACHE.clear()
    np.testing.assert_allclose(embed.embed_texts(path, [texts[1]], max_length=64)[0], x[1], atol=1e-5)


@pytest.mark.slow
def test_run_with_the_default_config_writes_a_checked_submission(tmp_path, no_network, capsys):
    out = tmp_path / "submission.csv"
    run_dir = tmp_path / "run"
    assert main(["run", "--data-dir", str(SAMPLE), "--output", str(out), "--run-dir", str(run_dir)]) == 0
    sub = pd.read_csv(out)
    sample = pd.read_csv(SAMPLE / "sample_submission.csv")
    assert sub["row_id"].tolist() == sample["row_id"].tolist()
    assert sub["rule_violation"].between(0, 1).all() and sub["rule_violation"].nunique() > 1
    assert (run_dir / "recipe.json").is_file() and (run_dir / "encoder" / "config.json").is_file()
    assert "config cpu-contrastive" in capsys.readouterr().out  # the CLI's default config


@pytest.mark.slow
def test_cv_hybrid_examples_scheme_on_the_sample(tmp_path):
    out = tmp_path / "cv"
    args = ["cv", "--data-dir", str(SAMPLE), "--config", "cpu-hybrid", "--scheme", "examples", "--folds", "2"]
    assert main([*args, "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["mean_rule_auc"] <= 1


@pytest.mark.slow
def test_default_beats_tfidf_on_the_real_files_novel_scheme(tmp_path, real_dir):
    """The figure the README's quality table reports (0.857 vs 0.830), with some slack."""
    out = tmp_path / "cv"
    args = ["cv", "--data-dir", str(real_dir), "--config", "cpu-hybrid", "--scheme", "novel", "--folds", "5"]
    assert main([*args, "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mean_rule_auc"] >= 0.845, metrics["mean_rule_auc"]
