"""The leaderboard cross-encoder recipe: URL keywords (template rule-body-urls), its configs, a short fine-tune."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.templates import ANSWER_SLOTS, TEMPLATES, URL_KEYWORDS_CAP, render, url_keywords
from jigsaw_kit.data.prep import _EXAMPLE_ONLY_SOURCES, apply_template

from ..conftest import ROOT, SAMPLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # www. and the TLD go; hyphens split; digits-only / digit-bearing tokens go; query names stay, values go
        (
            "Check https://www.best-deals.com/shop/free-iphone-2024?ref=x",
            ["best", "deals", "shop", "free", "iphone", "ref"],
        ),
        # video ids (letters + digits) and one-letter tokens (the m. of mobile hosts, ?v=) carry nothing
        ("Watch here https://m.youtube.com/watch?v=FyD2MYbSnKE", ["youtube", "watch"]),
        ("https://youtu.be/l0HvPMpm4p4", ["youtu"]),
        # Reddit markdown: the link ends at ')', the file extension and the digit-bearing 'ch5' go
        ("SD Stream: [English Stream 5](http://www.sports-stream.net/ch5.html) | Mobile", ["sports", "stream"]),
        # bare www. link, a ccTLD's generic second level (co.uk), underscores, trailing sentence punctuation
        ("see www.foo-bar.co.uk/big_sale.", ["foo", "bar", "big", "sale"]),
        # scheme in any case; dates in the path; several links de-duplicated in order
        (
            "Http://www.madpeoples.com/2017/01/02/hidden-features and http://madpeoples.com/google-search",
            ["madpeoples", "hidden", "features", "google", "search"],
        ),
        # several query names; percent-encoding decoded; fragment dropped
        (
            "https://steamcommunity.com/tradeoffer/new/?partner=117435037&token=d6YEv4kL",
            ["steamcommunity", "tradeoffer", "new", "partner", "token"],
        ),
        ("http://bit.ly/Free%20Money#top", ["bit", "free", "money"]),
        # hosts that are IP addresses give nothing; an e-mail address is not a link
        ("http://42.13.1.1/123", []),
        ("mail bob@www.example.com", []),
        ("no links here, just www and http words", []),
    ],
)
def test_url_keywords(text: str, expected: list[str]) -> None:
    assert url_keywords(text) == expected


def test_url_keywords_are_capped_over_all_links() -> None:
    text = " ".join(f"https://site{chr(97 + i)}x.com/word{chr(97 + i)}y" for i in range(26))
    words = url_keywords(text)
    assert len(words) == URL_KEYWORDS_CAP and len(set(words)) == URL_KEYWORDS_CAP
    assert words[:2] == ["siteax", "worday"]


def test_url_keywords_survive_malformed_links() -> None:
    assert url_keywords("http://exa mple.com http://]] https://") == ["exa"]


def test_template_appends_keywords_only_when_there_are_links() -> None:
    rows = pd.DataFrame(
        {
            "rule": ["No spam", "No spam"],
            "text": ["Buy at https://cheap-pills.net/viagra now", "no link in this comment"],
            "subreddit": ["secret_sub", "secret_sub"],
        }
    )
    out = apply_template(rows, "rule-body-urls")
    assert out["input_a"].tolist() == ["No spam", "No spam"]
    assert out["input_b"].tolist() == [
        "Buy at https://cheap-pills.net/viagra now URL: cheap pills viagra",
        "no link in this comment",  # unchanged: no " URL:" suffix
    ]
    assert not out["input_b"].str.contains("secret_sub").any()  # subreddit stays out, as in rule-body
    base = apply_template(rows, "rule-body")
    assert base["input_b"].tolist() == rows["text"].tolist()  # the default template is untouched


def test_template_is_a_registered_encoder_pair_template() -> None:
    assert "rule-body-urls" in TEMPLATES and "rule-body-urls" not in ANSWER_SLOTS  # encoders only (seq-cls)
    assert render("rule-body-urls", "R", "T")[1] is not None  # a pair: modeling refuses it for decoders


def test_recipe_configs_load() -> None:
    cpu = load_config("cpu-crossenc")
    o = cpu.options
    assert (cpu.method, o.model, cpu.template) == ("transformer", "all-MiniLM-L6-v2", "rule-body-urls")
    assert (o.upsample_test_examples, o.epochs, o.learning_rate) == (2, 3.0, 5e-5)
    assert (o.batch_size, o.warmup_ratio, o.max_length) == (16, 0.1, 200)
    t4 = load_config("kaggle-t4-mpnet")
    o = t4.options
    assert (o.model, t4.template, o.upsample_test_examples) == ("all-mpnet-base-v2", "rule-body-urls", 2)
    assert (o.learning_rate, o.epochs, o.batch_size, o.precision) == (2e-5, 2.0, 32, "auto")
    assert o.predict_token_budget == 65536


@pytest.fixture
def shared_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


def test_two_step_fine_tune_upsamples_test_examples(
    tmp_path: Path, shared_weights: None, no_network: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jigsaw_kit import pipeline
    from jigsaw_kit.methods.transformer import trainer

    # the recipe as shipped, but batch 4: the test checks the wiring, and 16-row steps are slow on busy CPUs
    cfg = load_config("cpu-crossenc", {"max_steps": 2, "batch_size": 4, "logging_steps": 1})
    p = pipeline.build(cfg, SAMPLE)
    assert p.manifest["template"] == "rule-body-urls"
    assert p.train["input_b"].str.contains(" URL: ").any() and p.test["input_b"].str.contains(" URL: ").any()

    # build keeps one row per (rule, text); the trainer repeats the test-example rows just before tokenising
    seen: list[tuple[int, int]] = []
    real = trainer.upsample_test_examples

    def spy(rows: pd.DataFrame, factor: int) -> pd.DataFrame:
        out = real(rows, factor)
        seen.append((len(rows), len(out)))
        return out

    monkeypatch.setattr(trainer, "upsample_test_examples", spy)
    from_test = p.train["source"].str.split("+").map(lambda s: any(x.startswith(_EXAMPLE_ONLY_SOURCES) for x in s))
    assert from_test.sum() > 0
    pipeline.fit(cfg, p.train, tmp_path / "run")
    assert seen == [(len(p.train), len(p.train) + int(from_test.sum()))]

    preds = pipeline.predict(tmp_path / "run", cfg, p.test, show_progress=False)
    assert preds.shape == (len(p.test),) and np.isfinite(preds).all() and ((preds >= 0) & (preds <= 1)).all()
