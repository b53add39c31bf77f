"""hybrid.py's 5th-place options: extra encoders, distance-weighted kNN, a per-rule C grid (fake embedders)."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from jigsaw_kit import methods, pipeline
from jigsaw_kit.core.checkpoints import resolve_model
from jigsaw_kit.core.config import load_config, parse_overrides, save_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.metrics import mean_rule_auc
from jigsaw_kit.methods.embedding import encoders, heads
from jigsaw_kit.methods.embedding.heads import CappedKnn, GridLR
from jigsaw_kit.methods.embedding.lookup import lookup_key
from jigsaw_kit.methods.hybrid import HybridRuleModel
from jigsaw_kit.methods.rulewise import RuleRegressions, rule_positions
from jigsaw_kit.methods.tfidf import TfidfRuleModel

from ..conftest import SAMPLE, fake_checkpoint
from .test_hybrid import LEGAL, SPAM, TRAIN, rows

MINILM, MPNET = "all-MiniLM-L6-v2", "all-mpnet-base-v2"
# Each fake encoder sees different words, so two encoders give different features and scores.
WORDS = {
    MINILM: ["buy", "free", "click", "lawyer", "court", "sue", "cat", "weather"],
    MPNET: ["now", "here", "stuff", "should", "them", "likes", "nice", "cat"],
}


def fake_embed(model_path, texts, max_length, token_budget=16384, backend="torch-fp32"):
    words = WORDS[Path(model_path).name]
    x = np.array([[t.lower().count(w) for w in words] + [1.0] for t in texts], dtype=float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Fake weights for both encoders (nothing vendored or downloaded); records each embed_texts path."""
    weights = tmp_path / "weights"
    for name in WORDS:
        fake_checkpoint(weights / name)
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(weights))
    seen: list[str] = []

    def recording(model_path, texts, max_length, token_budget=16384, backend="torch-fp32"):
        seen.append(Path(model_path).name)
        return fake_embed(model_path, texts, max_length, token_budget)

    monkeypatch.setattr(encoders, "embed_texts", recording)
    return seen


def old_predict(
    cfg, train: pd.DataFrame, ask: pd.DataFrame, tfidf: Callable[[pd.DataFrame], np.ndarray] | None = None
) -> np.ndarray:
    """HybridRuleModel before encoders / knn_k / embed_c_grid, copied inline: the defaults must match it.
    tfidf: the fitted TF-IDF head's scores of ask (by default the tfidf-lr method's, fitted here)."""
    o = cfg.options
    path = Path(o.model) if Path(o.model).is_dir() else resolve_model(o.model)
    tfidf = tfidf or TfidfRuleModel(cfg).fit(train).predict  # the hybrid's options hold tfidf-lr's
    y = train["label"].to_numpy()

    def lr():
        return LogisticRegression(C=o.embed_c, max_iter=3000, random_state=cfg.seed)

    emb = RuleRegressions(lr, "embedding", warn=False).fit(
        fake_embed(path, list(train["text"]), o.max_length), y, train["rule"]
    )
    known = {lookup_key(r, t): int(v) for r, t, v in zip(train["rule"], train["text"], y)} if o.exact_lookup else {}
    w = o.tfidf_weight
    p = w * tfidf(ask) + (1 - w) * emb.predict(fake_embed(path, list(ask["text"]), o.max_length), ask["rule"])
    if not known:
        return p
    found = np.array([known.get(lookup_key(r, t), -1) for r, t in zip(ask["rule"], ask["text"])])
    band = 0.1
    return np.where(found == 1, 1 - band + band * p, np.where(found == 0, band * p, band + (1 - 2 * band) * p))


ASK = rows(
    [
        (SPAM, "buy now click here free stuff 0", -1),  # labelled 1 in TRAIN: the lookup
        (SPAM, "free free click buy", -1),
        (SPAM, "the weather and my cat", -1),
        (LEGAL, "sue them in court now", -1),
        (LEGAL, "a nice cat", -1),
        ("Unseen rule", "buy free click now", -1),
    ]
)


@pytest.mark.parametrize("overrides", [{}, {"exact_lookup": "false", "tfidf_weight": "0.3"}])
def test_defaults_give_the_predictions_of_the_code_before(calls, overrides):
    cfg = load_config("cpu-hybrid", overrides)
    assert cfg.options.encoders == [] and cfg.options.knn_k == 0 and cfg.options.embed_c_grid == []
    model = HybridRuleModel(cfg).fit(TRAIN)
    np.testing.assert_array_equal(model.predict(ASK), old_predict(cfg, TRAIN, ASK))
    assert set(calls) == {MINILM} and len(model.recipe.encoders) == 1 and model.recipe.heads[0].knn is None


def test_defaults_match_the_code_before_on_the_sample(calls):
    cfg = load_config("cpu-hybrid")
    data = pipeline.build(cfg, SAMPLE)
    model = methods.create(cfg).fit(data.train)
    np.testing.assert_array_equal(model.predict(data.test), old_predict(cfg, data.train, data.test))


def per_rule_lr(x, y, rules, xq, rules_q, c: float) -> np.ndarray:
    """An independent per-rule LR (every rule of the query has both classes in training)."""
    out = np.zeros(len(xq))
    train_idx = rule_positions(rules)
    for rule, idx in rule_positions(rules_q).items():
        t = train_idx[rule]
        out[idx] = LogisticRegression(C=c, max_iter=3000, random_state=42).fit(x[t], y[t]).predict_proba(xq[idx])[:, 1]
    return out


def test_two_encoders_average_their_per_rule_scores(calls):
    cfg = load_config("cpu-hybrid", {"encoders": MPNET, "exact_lookup": "false", "tfidf_weight": "0.4"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    assert calls == [MINILM, MPNET]  # the config's model first, then encoders
    ask = ASK[ASK["rule"] != "Unseen rule"]
    p = model.predict(ask)
    assert calls[2:] == [MINILM, MPNET]
    y = TRAIN["label"].to_numpy()
    members = [
        per_rule_lr(
            fake_embed(name, list(TRAIN["text"]), 256),
            y,
            TRAIN["rule"],
            fake_embed(name, list(ask["text"]), 256),
            ask["rule"],
            cfg.options.embed_c,
        )
        for name in (MINILM, MPNET)
    ]
    assert not np.allclose(members[0], members[1])  # the two encoders really differ
    tfidf = model.recipe.tfidf.score(ask["text"], ask["rule"])
    np.testing.assert_allclose(p, 0.4 * tfidf + 0.6 * (members[0] + members[1]) / 2)
    extra = model.recipe.encoders[1]
    assert extra.checkpoint == MPNET and Path(extra.fitted_at).is_absolute()


def test_knn_changes_the_scores_and_ranks_a_clear_case(calls):
    base = {"exact_lookup": "false", "tfidf_weight": "0"}
    plain = HybridRuleModel(load_config("cpu-hybrid", base)).fit(TRAIN)
    cfg = load_config("cpu-hybrid", {**base, "knn_k": "12", "knn_weight": "0.3"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    ask = ASK[ASK["rule"] != "Unseen rule"]
    p = model.predict(ask)
    assert not np.allclose(p, plain.predict(ask))
    x = fake_embed(MINILM, list(ask["text"]), 256)
    head = model.recipe.heads[0]
    np.testing.assert_allclose(p, 0.7 * head.lr.predict(x, ask["rule"]) + 0.3 * head.knn.predict(x, ask["rule"]))
    knn = head.knn.models[SPAM]
    assert isinstance(knn, CappedKnn)
    assert knn.model.n_neighbors == 12 and knn.model.weights == "distance" and knn.model.metric == "cosine"
    # kNN alone ranks spam-like over benign texts in each rule
    only = HybridRuleModel(load_config("cpu-hybrid", {**base, "knn_k": "3", "knn_weight": "1"})).fit(TRAIN)
    q = only.predict(ask)
    assert q[0] > q[2] and q[1] > q[2] and q[3] > q[4]


def test_knn_caps_k_at_the_rule_size_and_keeps_single_class_rules_constant(calls):
    tiny = rows([("Tiny", "buy buy", 1), ("Tiny", "cat cat", 0), ("Tiny", "weather", 0)])
    one = rows([("One class", "buy 1", 1), ("One class", "buy 2", 1)])
    train = pd.concat([TRAIN, tiny, one], ignore_index=True)
    model = HybridRuleModel(load_config("cpu-hybrid", {"knn_k": "15"})).fit(train)
    head = model.recipe.heads[0]
    assert head.knn.models["Tiny"].model.n_neighbors == 3
    assert head.knn.constant == head.lr.constant == {"One class": 1.0}
    p = model.predict(rows([("One class", "free", -1), ("Unseen", "buy", -1), ("Tiny", "buy click", -1)]))
    assert ((p >= 0) & (p <= 1)).all()


def test_grid_lr_picks_the_c_a_3_fold_auc_picks():
    """Two features carry the same large noise and one of them the label: only a weakly regularised LR finds
    their difference, so a small C ranks worse. The grid must pick what 3-fold stratified AUC says."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    noise = rng.normal(0, 10, len(y))
    x = np.c_[noise + 2 * y + rng.normal(0, 0.3, len(y)), noise]
    grid = [1e-4, 100.0]

    def cv_auc(c: float) -> float:
        folds = StratifiedKFold(3).split(x, y)
        lr = LogisticRegression(C=c, max_iter=3000, random_state=42)
        return np.mean([roc_auc_score(y[t], lr.fit(x[f], y[f]).predict_proba(x[t])[:, 1]) for f, t in folds])

    aucs = {c: cv_auc(c) for c in grid}
    assert aucs[100.0] > aucs[1e-4] + 0.2  # the case is clear-cut
    picked = GridLR(grid, c=1e-4, seed=42).fit(x, y)
    assert picked.model.C_ == 100.0
    reversed_grid = GridLR(list(reversed(grid)), c=100.0, seed=42).fit(x, y)  # the order of the grid is no hint
    assert reversed_grid.model.C_ == 100.0


def test_embed_c_grid_builds_grid_lrs_and_falls_back_for_tiny_rules(calls, monkeypatch):
    made = []
    real = LogisticRegressionCV

    def recording(**kw):
        made.append(kw)
        return real(**kw)

    monkeypatch.setattr(heads, "LogisticRegressionCV", recording)
    tiny = rows([("Tiny", "buy", 1), ("Tiny", "buy free", 1), ("Tiny", "cat", 0), ("Tiny", "cat weather", 0)])
    cfg = load_config("cpu-hybrid", {"embed_c_grid": "0.3,1,3", "embed_c": "2"})
    model = HybridRuleModel(cfg).fit(pd.concat([TRAIN, tiny], ignore_index=True))
    lr = model.recipe.heads[0].lr
    picked = lr.models[SPAM]
    assert isinstance(picked, GridLR) and isinstance(picked.model, real)
    assert {k: made[0][k] for k in ("Cs", "cv", "scoring", "max_iter", "random_state")} == {
        "Cs": [0.3, 1.0, 3.0],
        "cv": 3,
        "scoring": "roc_auc",
        "max_iter": 3000,
        "random_state": 42,
    }
    fallback = lr.models["Tiny"].model  # 2 rows of each class: too few for 3 stratified folds
    assert type(fallback) is LogisticRegression and fallback.C == 2.0
    assert model.predict(ASK).shape == (len(ASK),)


def test_list_keys_parse_from_set_and_yaml(tmp_path):
    cfg = load_config("cpu-hybrid", parse_overrides(["encoders=a, b", "embed_c_grid=0.3,1,3", "knn_k=10"]))
    o = cfg.options
    assert o.encoders == ["a", "b"] and o.embed_c_grid == [0.3, 1.0, 3.0] and o.knn_k == 10
    assert load_config("cpu-hybrid-ensemble", parse_overrides(["encoders="])).options.encoders == []
    p = tmp_path / "c.yaml"
    p.write_text("method: hybrid\nencoders: [x, /abs/y]\nembed_c_grid: [0.5, 2]\n")
    cfg = load_config(str(p))
    assert cfg.options.encoders == ["x", "/abs/y"] and cfg.options.embed_c_grid == [0.5, 2.0]
    p.write_text("method: hybrid\nencoders: []\nembed_c_grid: '1,10'\n")
    assert load_config(str(p)).options.encoders == [] and load_config(str(p)).options.embed_c_grid == [1.0, 10.0]
    save_config(load_config("cpu-hybrid"), tmp_path / "saved.yaml")  # a run dir's config.yaml holds the [] defaults
    assert load_config(str(tmp_path / "saved.yaml")).options.encoders == []
    with pytest.raises(KitError, match="'lora_target_modules' must be a non-empty list"):
        load_config("cpu-minilm", {"lora_target_modules": ""})  # only the keys whose [] means "off" may be empty


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"knn_weight": "2"}, "knn_weight must be in"),
        ({"knn_weight": "-0.1"}, "knn_weight must be in"),
        ({"knn_k": "-1"}, "knn_k must be >= 0"),
        ({"knn_k": "many"}, "'knn_k' must be of type int"),
        ({"encoders": "a,,b"}, "'encoders' must be a list of names"),
        ({"encoders": ["a", " "]}, "'encoders' must be a list of names"),
        ({"embed_c_grid": "0,1"}, "embed_c_grid values must be > 0"),
        ({"embed_c_grid": "x,1"}, "'embed_c_grid' must be a list of numbers"),
        ({"embed_c_grid": [True]}, "'embed_c_grid' must be a list of numbers"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(KitError, match=message):
        load_config("cpu-hybrid", overrides)


def test_empty_encoder_name_in_a_dataclass_is_refused_by_validate():
    cfg = load_config("cpu-hybrid")
    cfg.options.encoders = [""]
    with pytest.raises(KitError, match="encoders must be non-empty"):
        cfg.validate()


def test_save_load_round_trip_resolves_encoders_again(calls, tmp_path, monkeypatch):
    cfg = load_config("cpu-hybrid", {"encoders": MPNET, "knn_k": "5", "embed_c_grid": "0.3,3"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    want = model.predict(ASK)
    model.save(tmp_path / "run")
    # the weights folder moves after training: the names resolve against the new JIGSAW_KIT_WEIGHTS
    moved = tmp_path / "moved-weights"
    (tmp_path / "weights").rename(moved)
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(moved))
    loaded = HybridRuleModel.load(tmp_path / "run", cfg)
    np.testing.assert_array_equal(loaded.predict(ASK), want)
    assert loaded.recipe.encoders[1].fitted_at == str((tmp_path / "weights" / MPNET).resolve())  # as at fit


def test_an_encoder_given_as_a_relative_path_falls_back_to_where_it_resolved_at_fit(calls, tmp_path, monkeypatch):
    fake_checkpoint(tmp_path / "enc" / MPNET)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("cpu-hybrid", {"encoders": f"enc/{MPNET}"})
    model = HybridRuleModel(cfg).fit(TRAIN)
    model.save(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "weights")  # "enc/..." no longer resolves from here
    loaded = HybridRuleModel.load(tmp_path / "run", cfg)
    np.testing.assert_array_equal(loaded.predict(ASK), model.predict(ASK))
    loaded.recipe.encoders[1] = dataclasses.replace(loaded.recipe.encoders[1], fitted_at=str(tmp_path / "gone"))
    with pytest.raises(KitError, match="no checkpoint"):
        loaded.predict(ASK)


@pytest.mark.parametrize("name", ["cpu-hybrid-ensemble", "cpu-hybrid-knn"])
def test_named_configs_train_and_predict_on_the_sample(calls, no_network, name):
    """Fitted on three quarters of the sample's texts, each config ranks the held-out quarter, which no lookup
    knows, within its rules (a broken head reads ~0.5, an inverted one far below)."""
    cfg = load_config(name)
    assert cfg.name == name and cfg.method == "hybrid"
    data = pipeline.build(cfg, SAMPLE)
    texts = data.train["text"].unique()
    held = data.train["text"].isin(np.random.default_rng(0).choice(texts, len(texts) // 4, replace=False))
    train, ask = data.train[~held], data.train[held]
    model = methods.create(cfg).fit(train)
    p = model.predict(ask)
    assert p.shape == (len(ask),) and ((p >= 0) & (p <= 1)).all() and len(np.unique(p)) > 1
    assert set(calls) == ({MINILM, MPNET} if name == "cpu-hybrid-ensemble" else {MINILM})
    assert (model.recipe.heads[0].knn is not None) == (name == "cpu-hybrid-knn")
    assert mean_rule_auc(ask["rule"], ask["label"], p) > 0.75
    assert model.predict(data.test).shape == (len(data.test),)
