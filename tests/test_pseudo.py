"""Recipe B: one round of pseudo-labels on the predicted rows (hybrid.py, pseudo_share), fake embedders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods import hybrid
from jigsaw_kit.methods.hybrid import HybridRuleModel

from .conftest import ROOT
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


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    monkeypatch.setattr(hybrid, "embed_texts", fake_embed)


def fit(**overrides: str) -> HybridRuleModel:
    return HybridRuleModel(load_config("cpu-hybrid", overrides)).fit(TRAIN)


def test_pseudo_rows_are_each_rules_extremes_without_labelled_or_repeated_texts():
    model = fit(pseudo_share="0.2")
    spam = [(SPAM, f"spam text {i}", -1) for i in range(12)]
    legal = [(LEGAL, f"legal text {i}", -1) for i in range(7)]
    labelled = [(SPAM, "BUY now click here  free stuff 0", -1), (LEGAL, "nice weather for a cat 3", -1)]
    ask = rows([*spam, *legal, *labelled, (SPAM, "Spam text 11", -1), (PETS, "few", -1), (PETS, "rows", -1)])
    scores = np.r_[np.arange(12) / 12, np.arange(7) / 7, 1.0, 0.0, 0.99, 0.9, 0.1]
    got = model.pseudo_rows(ask, scores)
    by_rule = got.groupby("rule")["text"].apply(list).to_dict()
    # floor(0.2 * 12) = 2 and floor(0.2 * 7) = 1 of each class; PETS has 2 rows: floor(0.4) = 0
    assert len(got) == 2 * 2 + 2 * 1 and set(by_rule) == {SPAM, LEGAL}
    top = got[got["label"] == 1].groupby("rule")["text"].apply(set).to_dict()
    bottom = got[got["label"] == 0].groupby("rule")["text"].apply(set).to_dict()
    # "Spam text 11" repeats "spam text 11" (first seen, kept); the labelled texts are never pseudo-labelled
    assert top == {SPAM: {"spam text 11", "spam text 10"}, LEGAL: {"legal text 6"}}
    assert bottom == {SPAM: {"spam text 0", "spam text 1"}, LEGAL: {"legal text 0"}}
    assert list(got.columns) == ["rule", "text", "label"] and set(got["label"]) == {0, 1}


def test_the_refit_sees_the_training_rows_plus_the_pseudo_rows_and_the_model_keeps_its_heads(monkeypatch):
    model = fit(pseudo_share="0.2")
    heads = (model.tfidf, model.embedding)
    seen: list[pd.DataFrame] = []
    real = HybridRuleModel._fit_heads

    def recording(self, rows):
        seen.append(rows)
        return real(self, rows)

    monkeypatch.setattr(HybridRuleModel, "_fit_heads", recording)
    first = model.predict(NEW)
    assert len(seen) == 1 and len(seen[0]) == len(TRAIN) + 2 * 4  # floor(0.2 * 20) = 4 per class
    extra = seen[0].iloc[len(TRAIN) :]
    assert (extra["rule"] == PETS).all() and extra["label"].value_counts().to_dict() == {1: 4, 0: 4}
    pd.testing.assert_frame_equal(seen[0].iloc[: len(TRAIN)], TRAIN[["rule", "text", "label"]])
    assert (model.tfidf, model.embedding) == heads  # the refit is a copy
    np.testing.assert_array_equal(model.predict(NEW), first)  # so a second call gives the same
    model.predict(TRAIN)  # every row labelled at fit: nothing to pseudo-label, no refit
    assert len(seen) == 2


def test_pseudo_labels_change_the_scores_and_never_read_the_labels_of_the_predicted_rows():
    plain = fit().predict(NEW)
    model = fit(pseudo_share="0.2")
    p = model.predict(NEW)
    text = list(NEW["text"])
    zebra, hello = text.index("zebra zebra"), text.index("hello there")
    assert plain[zebra] < plain[hello] and p[zebra] > p[hello]
    flipped = NEW.assign(label=np.random.default_rng(0).integers(0, 2, len(NEW)))
    np.testing.assert_array_equal(model.predict(flipped), p)
    np.testing.assert_array_equal(model.predict(NEW.drop(columns="label")), p)


def test_the_lookup_still_applies_after_the_refit(tmp_path):
    model = fit(pseudo_share="0.2")
    known = rows([(SPAM, "my cat likes the weather 0", -1), (SPAM, "buy now click here free stuff 1", -1)])
    ask = pd.concat([NEW, known])  # a repeated index too: rows are taken by position
    p = model.predict(ask)
    assert p[-1] >= 0.9 and p[-2] <= 0.1  # known positive on top, known negative at the bottom
    model.save(tmp_path)
    loaded = HybridRuleModel.load(tmp_path, model.cfg)
    assert len(loaded.train_rows) == len(TRAIN)
    np.testing.assert_array_equal(loaded.predict(ask), p)


@pytest.mark.parametrize("overrides", [{}, {"exact_lookup": "false", "tfidf_weight": "0.3"}])
def test_pseudo_share_0_changes_no_prediction(monkeypatch, overrides):
    from .test_hybrid_encoders import fake_embed as named_fake

    monkeypatch.setattr(hybrid, "embed_texts", named_fake)
    cfg = load_config("cpu-hybrid", overrides)
    assert cfg.options.pseudo_share == 0
    model = HybridRuleModel(cfg).fit(TRAIN)
    np.testing.assert_array_equal(model.predict(ASK), old_predict(cfg, TRAIN, ASK))
    assert not hasattr(model, "train_rows")


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
