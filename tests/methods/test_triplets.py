"""Recipe A: the rule-anchored triplet tune (embedding/tune.py) and per-rule centroid features (embedding/heads.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from jigsaw_kit.core.checkpoints import resolve_model
from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.contrastive import ContrastiveHybrid, recipe_from
from jigsaw_kit.methods.embedding import encoders
from jigsaw_kit.methods.embedding.heads import RuleCentroids
from jigsaw_kit.methods.embedding.tune import NEGATION, rule_pairs, rule_triplets
from jigsaw_kit.methods.hybrid import HybridRuleModel

from ..conftest import ROOT
from .test_hybrid import LEGAL, SPAM, TRAIN, fake_embed
from .test_hybrid_encoders import ASK, old_predict

TOY = pd.DataFrame(
    {
        "rule": ["r"] * 5 + ["s"] * 4 + ["t"] * 2,
        "text": [f"r{i}" for i in range(5)] + [f"s{i}" for i in range(4)] + ["t0", "t1"],
        "label": [1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1],  # rule t has no negative: no triplet
    }
)
LABEL = dict(zip(TOY["text"], TOY["label"]))


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


def test_triplets_anchor_on_the_rule_with_a_violating_positive_and_a_compliant_negative():
    got = rule_triplets(TOY, n=1000, seed=0)
    assert len(got["anchor"]) == 9  # one per labelled row of r and s
    for a, p, n in zip(got["anchor"], got["positive"], got["negative"]):
        assert a in ("r", "s") and p[0] == n[0] == a  # the rule's own text; comments of that rule
        assert LABEL[p] == 1 and LABEL[n] == 0
    # every labelled row of r and s is in its role once at least
    assert set(got["positive"]) | set(got["negative"]) == {t for t in TOY["text"] if t[0] != "t"}
    assert rule_triplets(TOY, n=1000, seed=0) == got  # seeded
    assert len(rule_triplets(TOY, n=4, seed=0)["anchor"]) == 4


def test_negated_copies_swap_positive_and_negative():
    plain = rule_triplets(TOY, n=1000, seed=0)
    both = rule_triplets(TOY, n=1000, seed=0, negated=True)
    assert len(both["anchor"]) == 2 * len(plain["anchor"])
    triples = list(zip(both["anchor"], both["positive"], both["negative"]))
    negated = [(a, p, n) for a, p, n in triples if a.startswith("This comment does not")]
    kept = [(a, p, n) for a, p, n in triples if a in ("r", "s")]
    assert len(negated) == len(kept) == 9
    for a, p, n in negated:
        rule = a.removeprefix(NEGATION.format(rule=""))
        assert a == NEGATION.format(rule=rule) and p[0] == n[0] == rule
        assert LABEL[p] == 0 and LABEL[n] == 1  # a compliant comment is what the negated rule describes
    assert sorted(kept) == sorted((a.removeprefix(NEGATION.format(rule="")), n, p) for a, p, n in negated)


def test_tune_examples_follow_the_objective_and_pairs_stay_as_before():
    cfg = load_config("cpu-contrastive")
    assert cfg.options.tune.objective == "pairs" and cfg.options.tune.negated_rules is False
    tune = recipe_from(cfg).tune
    assert tune.examples(TOY) == rule_pairs(TOY, 640, cfg.seed)  # the default tune is unchanged: 20 steps x 32
    trip = load_config("cpu-triplet")
    assert recipe_from(trip).tune.examples(TOY) == rule_triplets(TOY, 640, trip.seed)
    one_class = TOY[TOY["rule"] == "t"]
    with pytest.raises(KitError, match="no rule has a labelled text of each class"):
        recipe_from(trip).tune.examples(one_class)
    with pytest.raises(KitError, match="no rule has two labelled texts of each class"):
        tune.examples(one_class)


def test_cpu_triplet_is_cpu_contrastive_with_the_recipe_keys():
    trip, base = load_config("cpu-triplet"), load_config("cpu-contrastive")
    diff = {k for k, v in trip.flat().items() if base.flat()[k] != v}
    assert diff == {"name", "tune.objective", "centroid_features"}
    o = trip.options
    assert o.tune.objective == "triplets" and o.centroid_features and not o.tune.negated_rules


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tune_objective": "quads"}, "tune.objective must be one of"),  # the old flat name maps to tune.objective
        ({"negated_rules": "true"}, "tune.negated_rules needs tune.objective"),  # cpu-contrastive tunes on pairs
        ({"centroid_features": "maybe"}, "'centroid_features' must be of type bool"),
    ],
)
def test_invalid_recipe_keys_name_the_key(overrides, message):
    with pytest.raises(KitError, match=message):
        load_config("cpu-contrastive", overrides)


def test_centroid_features_are_cosines_and_leave_the_row_out_at_fit():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [2.0, 0.0]])
    y = np.array([1, 1, 0, 0, 1])
    rules = pd.Series(["a", "a", "a", "a", "b"])
    c = RuleCentroids(x, y, rules)
    vecs = {"a": np.array([0.0, 1.0]), "b": np.array([1.0, 0.0]), "new": np.array([1.0, 0.0])}
    q = np.array([[1.0, 0.0]])
    f = c.features(q, pd.Series(["a"]), vecs)
    assert f.shape == (1, 4)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(f[0], [s, 1.0, s - 1.0, 0.0])  # a's positives centre on (.5,.5), negatives on (1,0)
    fit = c.features(x, rules, vecs, y)
    assert fit.shape == (5, 4)
    # row 0 (positive): its own centroid is row 1 alone -> cosine 0; rule b's only row: no positive left -> 0
    np.testing.assert_allclose(fit[0, :2], [0.0, 1.0])
    np.testing.assert_allclose(fit[4, :2], [0.0, 0.0])
    np.testing.assert_allclose(fit[:, 2], fit[:, 0] - fit[:, 1])
    # a rule unseen at fit: the centroids pooled over all rules (positives (3,1), negatives (2,0))
    unseen = c.features(np.array([[0.0, 1.0]]), pd.Series(["new"]), vecs)
    np.testing.assert_allclose(unseen[0], [1 / np.sqrt(10), 0.0, 1 / np.sqrt(10), 0.0])


def test_centroid_model_predicts_from_its_stored_centroids_after_a_round_trip(monkeypatch, tmp_path):
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)
    cfg = load_config("cpu-hybrid", {"centroid_features": "true", "exact_lookup": "false"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    head = model.recipe.heads[0]
    assert head.lr.models[SPAM].coef_.shape == (1, 9 + 4)  # the embedding and the 4 features
    path = resolve_model(cfg.options.model)
    xq = fake_embed(path, list(ASK["text"]), 256)
    feats = head._features(xq, ASK["rule"], model.recipe.encoders[0].rule_vectors(ASK["rule"]))[:, -4:]
    spam = TRAIN[(TRAIN["rule"] == SPAM) & (TRAIN["label"] == 1)]
    centre = fake_embed(path, list(spam["text"]), 256).mean(axis=0)
    want = xq[1] @ centre / np.linalg.norm(xq[1]) / np.linalg.norm(centre)
    assert ASK["rule"].iloc[1] == SPAM and feats[1, 0] == pytest.approx(want)
    rule_vec = fake_embed(path, [SPAM], 256)[0]
    assert feats[1, 3] == pytest.approx(xq[1] @ rule_vec)
    want_p = model.predict(ASK)
    assert want_p.shape == (len(ASK),) and np.isfinite(want_p).all()  # the unseen rule too (all-rules LR)
    model.save(tmp_path)
    loaded = HybridRuleModel.load(tmp_path, cfg)
    np.testing.assert_array_equal(loaded.predict(ASK), want_p)
    # the scores come from the stored sums: swapping a rule's centroids changes that rule's scores only
    sums = loaded.recipe.heads[0].centroids.sums
    pos, neg = sums[LEGAL]
    sums[LEGAL] = (neg, pos)
    moved = loaded.predict(ASK) != want_p
    assert moved[(ASK["rule"] == LEGAL).to_numpy()].all() and not moved[(ASK["rule"] == SPAM).to_numpy()].any()


@pytest.mark.parametrize("overrides", [{}, {"exact_lookup": "false", "tfidf_weight": "0.3"}])
def test_default_recipe_keys_change_no_prediction(monkeypatch, overrides):
    from .test_hybrid_encoders import fake_embed as named_fake

    monkeypatch.setattr(encoders, "embed_texts", named_fake)
    cfg = load_config("cpu-hybrid", overrides)
    assert not cfg.options.centroid_features and cfg.options.pseudo_share == 0 and not hasattr(cfg.options, "tune")
    model = HybridRuleModel(cfg).fit(TRAIN)
    np.testing.assert_array_equal(model.predict(ASK), old_predict(cfg, TRAIN, ASK))
    assert model.recipe.heads[0].centroids is None and model.recipe.pseudo is None


def test_a_two_step_triplet_tune_moves_the_top_layers_and_predicts_after_a_round_trip(tmp_path, no_network):
    cfg = load_config("cpu-triplet", {"max_steps": "2", "batch_size": "4", "negated_rules": "true"})
    model = ContrastiveHybrid(cfg).fit(TRAIN, tmp_path / "work")
    base = load_file(str(ROOT / "weights" / "all-MiniLM-L6-v2" / "model.safetensors"))
    assert model.recipe.tuned and model.recipe.encoders[0].path() == tmp_path / "work" / "encoder"
    tuned = load_file(str(model.recipe.encoders[0].path() / "model.safetensors"))

    def weight(state, layer):
        (k,) = [k for k in state if k.endswith(f"encoder.layer.{layer}.attention.self.query.weight")]
        return state[k]

    assert np.array_equal(weight(base, 0), weight(tuned, 0))  # freeze_layers 3
    assert not np.array_equal(weight(base, 5), weight(tuned, 5))
    assert model.recipe.heads[0].lr.models[SPAM].coef_.shape == (1, 384 + 4)
    p = model.predict(ASK)
    assert ((p >= 0) & (p <= 1)).all() and len(np.unique(p)) > 1
    model.save(tmp_path / "run")  # the tuned encoder is copied in: it was tuned in another folder
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()
    again = ContrastiveHybrid.load(tmp_path / "run", cfg)
    np.testing.assert_array_equal(again.predict(ASK), p)
