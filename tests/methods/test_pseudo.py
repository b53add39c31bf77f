"""Recipe B: one round of pseudo-labels on the rows to be predicted, at fit (pseudo.py, pseudo_share)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embedding import encoders
from jigsaw_kit.methods.embedding.lookup import lookup_key
from jigsaw_kit.methods.embedding.pseudo import PseudoLabels
from jigsaw_kit.methods.embedding.recipe import EmbeddingRecipe
from jigsaw_kit.methods.hybrid import HybridRuleModel

from ..conftest import ROOT
from .test_hybrid import LEGAL, SPAM, TRAIN, fake_embed, rows
from .test_hybrid_encoders import ASK, old_predict

PETS = "No pets: do not post about animals."  # a rule with no training rows
# The all-rules model scores "buy ... click" high and "cat weather" low and knows no "zebra", so it puts
# "zebra zebra" below "hello there"; pseudo-labels teach the new rule that zebra goes with its violations.
NEW = rows(
    [(PETS, f"buy zebra click {i}", -1) for i in range(4)]
    + [(PETS, f"cat weather {i}", -1) for i in range(4)]
    + [(PETS, "zebra zebra", -1), (PETS, "hello there", -1)]
    + [(PETS, f"filler {i}", -1) for i in range(10)]
)
KNOWN = rows([(SPAM, "my cat likes the weather 0", -1), (SPAM, "buy now click here free stuff 1", -1)])


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    monkeypatch.setattr(encoders, "embed_texts", fake_embed)


def fit(unlabelled: pd.DataFrame | None = NEW, **overrides: str) -> HybridRuleModel:
    return HybridRuleModel(load_config("cpu-hybrid", overrides)).fit(TRAIN, unlabelled=unlabelled)


def old_pseudo_rows(train: pd.DataFrame, ask: pd.DataFrame, scores: np.ndarray, share: float) -> pd.DataFrame:
    """HybridRuleModel.pseudo_rows before the round moved to fit, copied inline."""
    labelled = {lookup_key(r, t) for r, t in zip(train["rule"], train["text"])}
    keys = [lookup_key(r, t) for r, t in zip(ask["rule"], ask["text"])]
    frame = pd.DataFrame({"rule": ask["rule"].to_numpy(), "text": ask["text"].to_numpy(), "score": scores, "key": keys})
    frame = frame[~frame["key"].isin(labelled)].drop_duplicates("key")
    picked = []
    for _, group in frame.groupby("rule", sort=False):
        k = int(share * len(group) + 1e-9)
        if k:
            ranked = group.sort_values("score", kind="stable")
            picked += [ranked.tail(k).assign(label=1), ranked.head(k).assign(label=0)]
    return pd.concat(picked, ignore_index=True)[["rule", "text", "label"]] if picked else frame.iloc[:0]


def old_refit_predict(overrides: dict[str, str], train: pd.DataFrame, ask: pd.DataFrame) -> np.ndarray:
    """The predict-time round as it was: score, pseudo-label, refit the heads on train + pseudo rows, score
    again, then the lookup of the ORIGINAL training rows."""
    cfg = load_config("cpu-hybrid", overrides)
    heads_only = load_config("cpu-hybrid", {**overrides, "exact_lookup": "false"})
    extra = old_pseudo_rows(train, ask, old_predict(heads_only, train, ask), cfg.options.pseudo_share)
    assert len(extra) > 0  # else this case proves nothing
    both = pd.concat([train[["rule", "text", "label"]].reset_index(drop=True), extra], ignore_index=True)
    p = old_predict(heads_only, both, ask)
    known = {lookup_key(r, t): int(v) for r, t, v in zip(train["rule"], train["text"], train["label"])}
    found = np.array([known.get(lookup_key(r, t), -1) for r, t in zip(ask["rule"], ask["text"])])
    return np.where(found == 1, 0.9 + 0.1 * p, np.where(found == 0, 0.1 * p, 0.1 + 0.8 * p))


def test_the_round_at_fit_gives_the_predictions_of_the_old_predict_time_refit(monkeypatch):
    from .test_hybrid_encoders import fake_embed as named_fake

    monkeypatch.setattr(encoders, "embed_texts", named_fake)
    ask = pd.concat([NEW, ASK, KNOWN], ignore_index=True)
    overrides = {"pseudo_share": "0.2", "tfidf_weight": "0.3"}
    model = HybridRuleModel(load_config("cpu-hybrid", overrides)).fit(TRAIN, unlabelled=ask)
    np.testing.assert_array_equal(model.predict(ask), old_refit_predict(overrides, TRAIN, ask))


def test_pseudo_rows_are_each_rules_extremes_without_labelled_or_repeated_texts():
    spam = [(SPAM, f"spam text {i}", -1) for i in range(12)]
    legal = [(LEGAL, f"legal text {i}", -1) for i in range(7)]
    labelled = [(SPAM, "BUY now click here  free stuff 0", -1), (LEGAL, "nice weather for a cat 3", -1)]
    ask = rows([*spam, *legal, *labelled, (SPAM, "Spam text 11", -1), (PETS, "few", -1), (PETS, "rows", -1)])
    scores = np.r_[np.arange(12) / 12, np.arange(7) / 7, 1.0, 0.0, 0.99, 0.9, 0.1]
    got = PseudoLabels(0.2).pick(TRAIN, ask, scores)
    by_rule = got.groupby("rule")["text"].apply(list).to_dict()
    # floor(0.2 * 12) = 2 and floor(0.2 * 7) = 1 of each class; PETS has 2 rows: floor(0.4) = 0
    assert len(got) == 2 * 2 + 2 * 1 and set(by_rule) == {SPAM, LEGAL}
    top = got[got["label"] == 1].groupby("rule")["text"].apply(set).to_dict()
    bottom = got[got["label"] == 0].groupby("rule")["text"].apply(set).to_dict()
    # "Spam text 11" repeats "spam text 11" (first seen, kept); the labelled texts are never pseudo-labelled
    assert top == {SPAM: {"spam text 11", "spam text 10"}, LEGAL: {"legal text 6"}}
    assert bottom == {SPAM: {"spam text 0", "spam text 1"}, LEGAL: {"legal text 0"}}
    assert list(got.columns) == ["rule", "text", "label"] and set(got["label"]) == {0, 1}
    pd.testing.assert_frame_equal(got, old_pseudo_rows(TRAIN, ask, scores, 0.2))


def test_fit_refits_the_heads_once_on_the_training_rows_plus_the_pseudo_rows_and_predict_never(monkeypatch):
    seen: list[pd.DataFrame] = []
    real = EmbeddingRecipe.fit_heads

    def recording(self, rows):
        seen.append(rows)
        return real(self, rows)

    monkeypatch.setattr(EmbeddingRecipe, "fit_heads", recording)
    model = fit(pseudo_share="0.2")
    assert len(seen) == 2 and len(seen[0]) == len(TRAIN) and len(seen[1]) == len(TRAIN) + 2 * 4  # floor(0.2 * 20)
    extra = seen[1].iloc[len(TRAIN) :]
    assert (extra["rule"] == PETS).all() and extra["label"].value_counts().to_dict() == {1: 4, 0: 4}
    pd.testing.assert_frame_equal(seen[1].iloc[: len(TRAIN)], TRAIN[["rule", "text", "label"]])
    first = model.predict(NEW)
    np.testing.assert_array_equal(model.predict(NEW), first)
    assert len(seen) == 2  # predict scores with the heads fit left
    fit(unlabelled=TRAIN, pseudo_share="0.2")  # every row labelled at fit: nothing to pseudo-label, no refit
    assert len(seen) == 3


def test_pseudo_labels_change_the_scores_and_never_read_the_labels_of_the_unlabelled_rows():
    plain = fit().predict(NEW)
    p = fit(pseudo_share="0.2").predict(NEW)
    text = list(NEW["text"])
    zebra, hello = text.index("zebra zebra"), text.index("hello there")
    assert plain[zebra] < plain[hello] and p[zebra] > p[hello]
    flipped = NEW.assign(label=np.random.default_rng(0).integers(0, 2, len(NEW)))
    np.testing.assert_array_equal(fit(flipped, pseudo_share="0.2").predict(NEW), p)
    np.testing.assert_array_equal(fit(NEW.drop(columns="label"), pseudo_share="0.2").predict(NEW), p)


def test_the_lookup_of_the_training_rows_still_applies_after_the_refit(tmp_path):
    ask = pd.concat([NEW, KNOWN])  # a repeated index too: rows are taken by position
    model = fit(ask, pseudo_share="0.2")
    p = model.predict(ask)
    assert p[-1] >= 0.9 and p[-2] <= 0.1  # known positive on top, known negative at the bottom
    model.save(tmp_path)
    np.testing.assert_array_equal(HybridRuleModel.load(tmp_path, model.cfg).predict(ask), p)


def test_a_pseudo_config_fitted_without_the_rows_to_predict_says_why():
    with pytest.raises(KitError, match="pseudo_share > 0 pseudo-labels the rows to be predicted at fit"):
        fit(None, pseudo_share="0.1")
    fit(None)  # without the round, fit needs none


@pytest.mark.parametrize("overrides", [{}, {"exact_lookup": "false", "tfidf_weight": "0.3"}])
def test_pseudo_share_0_changes_no_prediction(monkeypatch, overrides):
    from .test_hybrid_encoders import fake_embed as named_fake

    monkeypatch.setattr(encoders, "embed_texts", named_fake)
    cfg = load_config("cpu-hybrid", overrides)
    assert cfg.options.pseudo_share == 0
    model = HybridRuleModel(cfg).fit(TRAIN, unlabelled=ASK)
    np.testing.assert_array_equal(model.predict(ASK), old_predict(cfg, TRAIN, ASK))
    assert model.recipe.pseudo is None


def test_cpu_hybrid_pseudo_is_cpu_hybrid_with_a_share():
    cfg, base = load_config("cpu-hybrid-pseudo"), load_config("cpu-hybrid")
    diff = {k for k, v in cfg.flat().items() if base.flat()[k] != v}
    assert diff == {"name", "pseudo_share"} and cfg.options.pseudo_share == 0.1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.5", "pseudo_share must be 0"),
        ("0.7", "pseudo_share must be 0"),
        ("-0.1", "pseudo_share must be 0"),
        ("nan", "pseudo_share must be 0"),
        ("lots", "'pseudo_share' must be of type float"),
    ],
)
def test_invalid_pseudo_share_names_the_key(value, message):
    with pytest.raises(KitError, match=message):
        load_config("cpu-hybrid", {"pseudo_share": value})
