"""The inference batcher: every row once, within the budget, original order restored, OOM retried."""

from __future__ import annotations

import logging
import string

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jigsaw_kit import pipeline
from jigsaw_kit.core.config import Config, save_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods import batching as B
from jigsaw_kit.methods.transformer import predict as P


@given(st.lists(st.integers(1, 300), min_size=0, max_size=200), st.integers(1, 2000))
@settings(max_examples=200, deadline=None)
def test_token_budget_batches_cover_each_row_once_within_budget(lengths, budget):
    lengths = np.array(lengths, dtype=np.int64)
    batches = B.token_budget_batches(lengths, budget)
    flat = np.concatenate(batches) if batches else np.empty(0, dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) > 0
        padded = len(b) * int(lengths[b].max())
        # only a row that alone exceeds the budget may break it, and then it is alone
        assert padded <= budget or len(b) == 1
    maxes = [int(lengths[b].max()) for b in batches]
    assert maxes == sorted(maxes, reverse=True)  # longest first: an OOM shows up in the first batch


def test_over_long_row_gets_its_own_batch():
    batches = B.token_budget_batches(np.array([10, 500, 10, 10]), budget=100)
    assert [b.tolist() for b in batches] == [[1], [0, 2, 3]]


@given(st.lists(st.integers(1, 50), min_size=1, max_size=60), st.integers(1, 5))
@settings(max_examples=100, deadline=None)
def test_shards_are_contiguous_and_cover_all_batches(lengths, world):
    lengths = np.array(lengths)
    batches = B.token_budget_batches(lengths, 64)
    shards = [B.shard_batches(batches, lengths, r, world) for r in range(world)]
    joined = [b for s in shards for b in s]
    assert len(joined) == len(batches)
    assert all(a is b for a, b in zip(joined, batches))  # rank order = batch order: contiguous shards


def _tiny_run_dir(root):
    """A run dir holding a 2-layer random BERT with a character-level vocab: loads in milliseconds."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits, *".,!?':"]
    vocab += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(root / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
    )
    BertForSequenceClassification(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    save_config(Config(), root / "config.yaml")
    return root


def _budget(tokens: int) -> Config:
    return Config().override({"predict_token_budget": tokens})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _tiny_run_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    words = ["spam", "buy", "now", "lawyer", "advice", "ok", "thanks", "link", "cheap", "x"]
    bodies = [" ".join(rng.choice(words, size=int(rng.integers(1, 40)))) for _ in range(57)]
    rules = ["no spam", "no legal advice: do not offer it"]
    return pd.DataFrame({"input_a": [rules[i % 2] for i in range(57)], "input_b": bodies})


@pytest.fixture(scope="module")
def reference(run_dir, rows):
    """One row at a time: no padding at all, so nothing can depend on batching or order."""
    return pipeline.predict(run_dir, _budget(1), rows, show_progress=False)


def test_predictions_do_not_depend_on_the_budget(run_dir, rows, reference):
    assert np.isfinite(reference).all() and reference.std() > 0
    for budget in (64, 500, 1_000_000):
        got = pipeline.predict(run_dir, _budget(budget), rows, show_progress=False)
        # padding is masked out; the only differences are float rounding from other matmul shapes
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)


def test_out_of_memory_splits_the_batch_and_retries(run_dir, rows, reference, monkeypatch, caplog):
    real = P._forward

    def forward(model, batch):
        if batch["input_ids"].shape[0] > 4:  # "the GPU" holds 4 rows at most
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, batch)

    monkeypatch.setattr(P, "_forward", forward)
    with caplog.at_level(logging.WARNING, logger="jigsaw_kit.methods.transformer.predict"):
        got = pipeline.predict(run_dir, _budget(100_000), rows, show_progress=False)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    assert "out of memory" in caplog.text and "splitting it in two" in caplog.text


def test_after_out_of_memory_later_batches_are_capped(run_dir, rows, reference, monkeypatch):
    real = P._forward
    calls = []

    def forward(model, batch):
        calls.append(batch["input_ids"].numel())
        if batch["input_ids"].numel() > 400:  # memory scales with padded tokens
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, batch)

    monkeypatch.setattr(P, "_forward", forward)
    got = pipeline.predict(run_dir, _budget(1000), rows, show_progress=False)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    failures = [n for n in calls if n > 400]
    # the first batch fails until halved to fit; every later batch is split before it runs
    assert 1 <= len(failures) <= 2 and calls[: len(failures)] == failures, calls


def test_out_of_memory_on_a_single_row_is_a_kit_error(run_dir, rows, monkeypatch):
    def forward(model, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(P, "_forward", forward)
    with pytest.raises(KitError, match="does not fit in GPU memory"):
        pipeline.predict(run_dir, _budget(1), rows.head(3), show_progress=False)


def test_several_devices_restore_the_order(run_dir, rows, reference):
    from jigsaw_kit.core.checkpoints import load_classifier, load_tokenizer

    tok = load_tokenizer(run_dir / "model")
    model = load_classifier(run_dir / "model").eval()
    enc = P.encode(tok, rows, 256)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    batches = B.token_budget_batches(lengths, 200)
    cpu = torch.device("cpu")
    got = P.predict_on_devices(model, tok, enc, batches, len(rows), [cpu, cpu, cpu])
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)


def test_naive_padding_to_max_length_gives_the_same_probabilities(run_dir, rows, reference):
    from jigsaw_kit.core.checkpoints import load_classifier, load_tokenizer

    tok = load_tokenizer(run_dir / "model")
    model = load_classifier(run_dir / "model").eval()
    enc = P.encode(tok, rows, 256)
    batches = [np.arange(i, min(i + 8, len(rows))) for i in range(0, len(rows), 8)]
    idx, p = P.predict_batches(model, tok, enc, batches, torch.device("cpu"), pad_to=256)
    np.testing.assert_allclose(P._assemble([(idx, p)], len(rows)), reference, rtol=0, atol=1e-5)
