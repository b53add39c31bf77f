"""methods/guards.py: a training deadline that keeps the member's predictions, and no silent NaN.

Tiny random checkpoints (tests/methods/test_models.py) through the kit's real fit -> predict path.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from jigsaw_kit import pipeline
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.methods import guards
from jigsaw_kit.methods.transformer import modeling as models

from .test_models import frame, make_bert, make_llama, make_qwen2, tiny_cfg


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_bert(tmp_path_factory.mktemp("bert"))


def _fit_predict(cfg, run):
    rows = apply_template(frame(), cfg.template)
    result = pipeline.fit(cfg, rows, run)
    preds = pipeline.predict(run, cfg, rows, show_progress=False)
    metrics = json.loads((run / "train_metrics.json").read_text())
    assert result.stop == {k: metrics[k] for k in ("stopped_early", "stopped_at_step", "planned_steps")}
    return preds, metrics


# ---- deadline -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_deadline_in_the_past_stops_after_one_step_and_still_predicts(bert, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(guards.DEADLINE_ENV, "1000")  # 1970: long past
    cfg = tiny_cfg(bert, template="rule-body", max_steps=6)
    with caplog.at_level("WARNING", logger="jigsaw_kit.methods.guards"):
        preds, metrics = _fit_predict(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert preds.shape == (12,) and np.isfinite(preds).all()
    assert metrics["stopped_early"] is True and metrics["stopped_at_step"] == 1 and metrics["planned_steps"] == 6
    assert metrics["epochs"] == pytest.approx(1 * 4 / 12)  # one step of 4 rows, not the planned six
    assert "stopped by its deadline" in caplog.text


@pytest.mark.slow
def test_a_run_stopped_by_its_deadline_still_writes_its_submission(bert, tmp_path, monkeypatch):
    from ..conftest import SAMPLE

    monkeypatch.setenv(guards.DEADLINE_ENV, "1000")
    cfg = tiny_cfg(bert, template="rule-body", max_steps=50)
    res = pipeline.run(cfg, SAMPLE, tmp_path / "submission.csv", tmp_path / "run")
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == len(res.processed.sample_submission) and sub["rule_violation"].notna().all()
    metrics = json.loads((tmp_path / "run" / "train_metrics.json").read_text())
    assert metrics["stopped_early"] is True and metrics["stopped_at_step"] == 1 and metrics["planned_steps"] == 50


@pytest.mark.slow
def test_a_deadline_a_few_steps_in(bert, tmp_path, monkeypatch):
    clock = iter(range(100, 200))  # the deadline's clock: one second later at each step's end
    monkeypatch.setattr(guards, "_now", lambda: float(next(clock)))
    monkeypatch.setenv(guards.DEADLINE_ENV, "102.5")  # steps 1-3 end at 100-102, step 4 at 103: past it
    cfg = tiny_cfg(bert, template="rule-body", max_steps=6)
    preds, metrics = _fit_predict(cfg, tmp_path / "run")
    assert metrics["stopped_early"] is True and metrics["stopped_at_step"] == 4 and metrics["planned_steps"] == 6
    assert np.isfinite(preds).all()


@pytest.mark.slow
def test_no_deadline_trains_every_step(bert, tmp_path, monkeypatch):
    monkeypatch.delenv(guards.DEADLINE_ENV, raising=False)
    _, metrics = _fit_predict(tiny_cfg(bert, template="rule-body", max_steps=2), tmp_path / "run")
    assert metrics["stopped_early"] is False and metrics["stopped_at_step"] is None and metrics["planned_steps"] == 2


def test_deadline_env(monkeypatch):
    monkeypatch.delenv(guards.DEADLINE_ENV, raising=False)
    assert guards.train_deadline() is None
    monkeypatch.setenv(guards.DEADLINE_ENV, " 1767225600 ")
    assert guards.train_deadline() == 1767225600.0
    for bad in ("tomorrow", "nan", "inf"):
        monkeypatch.setenv(guards.DEADLINE_ENV, bad)
        with pytest.raises(KitError, match="unix epoch seconds"):
            guards.train_deadline()


# ---- nan ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_nan_loss_drops_the_member_with_the_reason(bert, tmp_path, monkeypatch):
    real = models.load_for_training

    def poisoned(*args, **kwargs):  # a stand-in for fp16 overflow: the forward pass returns a nan loss
        model = real(*args, **kwargs)

        def nan_loss(module, inputs, out):
            out["loss"] = out["loss"] * float("nan")
            return out

        model.register_forward_hook(nan_loss)
        return model

    monkeypatch.setattr(models, "load_for_training", poisoned)
    cfg = tiny_cfg(bert, template="rule-body", max_steps=3)
    with pytest.raises(KitError, match=r"training loss became nan at step 1 of 3: the member is dropped; for fp16"):
        pipeline.fit(cfg, apply_template(frame(), cfg.template), tmp_path / "run")


def test_check_predictions():
    np.testing.assert_array_equal(guards.check_predictions([0.1, 0.2, 0.2]), [0.1, 0.2, 0.2])
    guards.check_predictions([0.5])  # one row cannot be told from a constant
    guards.check_predictions([])
    with pytest.raises(KitError, match=r"m: 1 of 3 predictions are not finite \(nan at row 1\); the member is dropped"):
        guards.check_predictions([0.1, float("nan"), 0.3], "m")
    with pytest.raises(KitError, match="not finite"):
        guards.check_predictions(np.array([np.inf, 0.2]))
    with pytest.raises(KitError, match="all 3 predictions equal 0.5"):
        guards.check_predictions(np.full(3, 0.5))
    guards.check_predictions(np.full(3, 0.5), allow_constant=True)  # only logged


class _StandIn:
    def __init__(self, preds):
        self.preds = preds

    def predict(self, rows, show_progress=True):
        return self.preds


def test_pipeline_predict_refuses_nan_and_constant_predictions(monkeypatch, tmp_path):
    from jigsaw_kit.core.config import Config

    rows = pd.DataFrame({"input_a": ["a", "b", "c"], "input_b": ["x", "y", "z"]})
    cfg = Config(name="stand-in")
    for preds, msg in [(np.array([0.2, np.nan, 0.1]), "not finite"), (np.zeros(3), "all 3 predictions equal")]:
        monkeypatch.setattr(pipeline.methods, "load", lambda run_dir, cfg, p=preds: _StandIn(p))
        with pytest.raises(KitError, match=f"stand-in .*{msg}"):
            pipeline.predict(tmp_path, cfg, rows, show_progress=False)
    good = np.array([0.3, 0.1, 0.2], dtype=np.float32)
    monkeypatch.setattr(pipeline.methods, "load", lambda run_dir, cfg: _StandIn(good))
    assert pipeline.predict(tmp_path, cfg, rows, show_progress=False) is good  # returned unchanged
    # a constant is legitimate for identical inputs, and for per-rule heads that saw a single class
    monkeypatch.setattr(pipeline.methods, "load", lambda run_dir, cfg: _StandIn(np.full(3, 0.5)))
    pipeline.predict(tmp_path, cfg, pd.DataFrame({"input_a": ["a"] * 3, "input_b": ["x"] * 3}), show_progress=False)
    pipeline.predict(tmp_path, Config(method="tfidf-lr"), rows, show_progress=False)
    with pytest.raises(KitError, match="not finite"):  # but nan never is
        monkeypatch.setattr(pipeline.methods, "load", lambda run_dir, cfg: _StandIn(np.array([0.1, np.nan, 0.1])))
        pipeline.predict(tmp_path, Config(method="tfidf-lr"), rows, show_progress=False)


# ---- LoRA on a half-precision base ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "template", "head"), [(make_qwen2, "yes-no-chatml", "yes-no"), (make_llama, "prompt", "seq-cls")]
)
def test_lora_trains_fp32_weights_on_an_fp16_base(make, template, head, tmp_path, monkeypatch):
    # What a T4 run builds (precision fp16), constructed on CPU without running fp16 math: the frozen base is
    # fp16, every trainable weight (adapters, a seq-cls head) fp32, as the Trainer's fp16 GradScaler requires.
    from jigsaw_kit.core.checkpoints import load_tokenizer

    path = make(tmp_path / "ckpt")
    monkeypatch.setattr(models, "_precision", lambda cfg: "fp16")
    cfg = tiny_cfg(path, template=template, head=head, lora_r=4)
    model = models.load_for_training(cfg, path, load_tokenizer(path))
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    assert any("lora_A" in n for n in trainable) and set(trainable.values()) == {torch.float32}, trainable
    assert frozen and set(frozen.values()) == {torch.float16}


# ---- chunked tokenisation in training -------------------------------------------------------------------


def _tokenize_at_once(tokenizer, rows, max_length, with_labels):
    """The one-call tokenize_rows this kit used before chunking: the reference the chunks must equal."""
    from datasets import Dataset

    a, b = rows["input_a"].tolist(), rows["input_b"].tolist()
    pair = any(x is not None for x in b)
    enc = tokenizer(a, b if pair else None, truncation=True, max_length=max_length)
    data = {k: enc[k] for k in enc.keys()}
    data["length"] = [len(ids) for ids in enc["input_ids"]]
    if with_labels:
        data["labels"] = rows["label"].astype(int).tolist()
    return Dataset.from_dict(data)


@pytest.mark.parametrize(("make", "template"), [(make_bert, "rule-body-urls"), (make_qwen2, "yes-no-chatml")])
def test_chunked_tokenisation_equals_one_call_on_the_sample(make, template, tmp_path):
    from jigsaw_kit.core.checkpoints import load_tokenizer
    from jigsaw_kit.core.config import Config
    from jigsaw_kit.data.prep import upsample_test_examples
    from jigsaw_kit.methods.transformer.trainer import tokenize_rows

    from ..conftest import SAMPLE

    tok = load_tokenizer(make(tmp_path / "ckpt"))
    models.prepare_tokenizer(tok, "decoder" if make is make_qwen2 else "encoder")
    rows = upsample_test_examples(pipeline.build(Config(template=template), SAMPLE).train, 2)
    for with_labels in (True, False):
        want = _tokenize_at_once(tok, rows, 48, with_labels)
        for chunk in (7, 4096):  # many chunks with a ragged last one; one chunk
            got = tokenize_rows(tok, rows, 48, with_labels, chunk=chunk)
            assert got.column_names == want.column_names and got.features == want.features
            assert got.to_dict() == want.to_dict()


@pytest.mark.slow
def test_the_contrastive_tune_obeys_the_deadline_too(tmp_path, monkeypatch):
    from jigsaw_kit.core.config import load_config
    from jigsaw_kit.methods.contrastive import tune_encoder

    from ..conftest import ROOT, SAMPLE

    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    monkeypatch.setenv(guards.DEADLINE_ENV, "1000")
    cfg = load_config("cpu-contrastive", {"max_steps": "4"})
    info: dict = {}
    out = tune_encoder(cfg, pipeline.build(cfg, SAMPLE).train, tmp_path / "encoder", info=info)
    assert (out / "config.json").is_file()  # the tuned encoder is saved after the stop
    assert info == {"stopped_early": True, "stopped_at_step": 1, "planned_steps": 4}
