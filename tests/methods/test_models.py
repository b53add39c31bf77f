"""Backbones and heads (models.py) on tiny random checkpoints built here: no downloaded weights.

Qwen2 / Llama (byte-level BPE tokenizer.json), BERT (WordPiece vocab.txt) and DeBERTa-v2
(a Unigram tokenizer.json through DebertaV2Tokenizer, which transformers 5 builds without
sentencepiece) go through the kit's real train -> predict path.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from jigsaw_kit.core.checkpoints import load_tokenizer
from jigsaw_kit.core.config import Config, load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.templates import ANSWER_SLOTS, AnswerSlot, render
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.methods.transformer import modeling as models

WORDS = (
    "no spam do not advertise buy cheap watches now legal advice offer you should sue your landlord "
    "hello world this is a comment great post thanks lol i agree rule text yes answer does the break"
).split()
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


# ---- tiny checkpoints --------------------------------------------------------------------------


def _bpe_tokenizer(d: Path, bos: str | None):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (["<s>", "</s>"] if bos else [])
    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([" ".join(WORDS), "Answer: Yes", "Answer: No", "\nYes", "\nNo"] * 20, trainer)
    if bos:  # Llama-style: <s> first, and token_type_ids among the inputs (the kit must drop them)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
        names = ["input_ids", "token_type_ids", "attention_mask"]
        kw = {"bos_token": bos, "eos_token": "</s>", "model_input_names": names}
    else:  # Qwen-style: no bos, eos but no pad token (the kit pads with eos)
        kw = {"eos_token": "<|endoftext|>", "model_input_names": ["input_ids", "attention_mask"]}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    fast.save_pretrained(d)
    return fast


def make_qwen2(d: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _bpe_tokenizer(d, None)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=512, **TINY)
    cfg.tie_word_embeddings, cfg.eos_token_id = True, tok.eos_token_id
    Qwen2ForCausalLM(cfg).save_pretrained(d)
    return d


def make_llama(d: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _bpe_tokenizer(d, "<s>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), num_key_value_heads=4, max_position_embeddings=512, **TINY)
    cfg.tie_word_embeddings, cfg.bos_token_id, cfg.eos_token_id = False, tok.bos_token_id, tok.eos_token_id
    LlamaForCausalLM(cfg).save_pretrained(d)
    return d


def make_bert(d: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    d.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *chars, *("##" + c for c in chars)]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(vocab=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), max_position_embeddings=512, **TINY)).save_pretrained(d)
    return d


def make_deberta(d: Path) -> Path:
    # DeBERTa-v3 ships a sentencepiece spm.model; a Unigram vocab given to DebertaV2Tokenizer is the
    # same tokenizer type, built offline without the sentencepiece package, saved as tokenizer.json.
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Tokenizer

    chars = list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(p, 0.0) for p in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    vocab += [("▁" + w, -1.0) for w in sorted(set(WORDS))] + [(c, -5.0) for c in chars]
    vocab += [("▁" + c, -6.0) for c in chars] + [("▁", -8.0)]
    tok = DebertaV2Tokenizer(vocab=vocab)
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = DebertaV2Config(
        vocab_size=len(tok),
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=32,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        pooler_hidden_size=32,
        **TINY,
    )
    DebertaV2ForMaskedLM(cfg).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = {"qwen2": make_qwen2, "llama": make_llama, "bert": make_bert, "deberta": make_deberta}[name](
                root / name
            )
        return made[name]

    return get


def frame() -> pd.DataFrame:
    spam, legal = "No spam: do not advertise.", "No legal advice: do not offer legal advice."
    texts = [
        (spam, "buy cheap watches now", 1),
        (spam, "hello world", 0),
        (spam, "buy now buy now cheap", 1),
        (spam, "great post thanks", 0),
        (spam, "cheap watches, buy them now!", 1),
        (spam, "i agree lol", 0),
        (legal, "you should sue your landlord", 1),
        (legal, "thanks for the post", 0),
        (legal, "legal advice: sue them", 1),
        (legal, "hello there", 0),
        (legal, "sue your landlord now", 1),
        (legal, "this is a comment", 0),
    ]
    return pd.DataFrame([{"rule": r, "text": t, "label": y, "subreddit": "sub"} for r, t, y in texts])


def tiny_cfg(model: Path, **kw) -> Config:
    base = dict(
        model=str(model),
        max_steps=3,
        batch_size=4,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        logging_steps=1,
        max_length=256,
        predict_token_budget=2048,
        lora_alpha=8,
    )
    return Config(name="tiny").override({**base, **kw})  # shared keys and options alike, as --set sets them


# ---- detection rule and head choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model_type",
    ["bert", "roberta", "xlm-roberta", "deberta-v2", "modernbert", "electra", "distilbert"],
)
def test_encoders_are_detected_from_config(model_type):
    assert models.backbone_kind({"model_type": model_type, "architectures": ["SomethingForCausalLM"]}) == "encoder"


@pytest.mark.parametrize("model_type", ["qwen2", "qwen3", "llama", "gemma", "gemma2", "mistral", "phi3"])
def test_decoders_are_detected_from_config(model_type):
    # the name of the folder or of the architecture does not matter, only model_type does
    assert models.backbone_kind({"model_type": model_type, "_name_or_path": "bert-base-uncased"}) == "decoder"


def test_encoder_decoders_and_bad_configs():
    assert models.backbone_kind({"model_type": "bart", "is_encoder_decoder": True}) == "encoder"
    with pytest.raises(KitError, match="model_type"):
        models.backbone_kind({"architectures": ["LlamaForCausalLM"]})


def test_resolve_head():
    assert models.resolve_head("auto", "encoder", "rule-body") == "seq-cls"
    assert models.resolve_head("auto", "decoder", "yes-no-chatml") == "yes-no"
    assert models.resolve_head("auto", "decoder", "prompt") == "seq-cls"
    assert models.resolve_head("seq-cls", "decoder", "yes-no") == "seq-cls"
    with pytest.raises(KitError, match="encoder"):
        models.resolve_head("yes-no", "encoder", "yes-no")
    with pytest.raises(KitError, match="sentence pair"):
        models.resolve_head("auto", "decoder", "rule-body")


def test_yes_no_templates_have_slots():
    for name, slot in ANSWER_SLOTS.items():
        a, b = render(name, "No spam.", "buy now", "r_xyzzy")
        assert b is None and "No spam." in a and "buy now" in a and "xyzzy" not in a  # subreddit left out
        assert slot.suffix and slot.yes != slot.no


# ---- config fields ---------------------------------------------------------------------------------


def test_lora_config_fields(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("head: yes-no\ntemplate: yes-no-chatml\nlora_r: 8\nlora_target_modules: [q_proj, v_proj]\n")
    cfg = load_config(str(p))
    o = cfg.options
    assert o.lora_target_modules == ["q_proj", "v_proj"] and o.lora_r == 8 and o.head == "yes-no"
    o = load_config(str(p), {"lora_target_modules": "q_proj, k_proj", "gradient_checkpointing": "true"}).options
    assert o.lora_target_modules == ["q_proj", "k_proj"] and o.gradient_checkpointing is True
    assert load_config("cpu-minilm").options.lora_target_modules == ["all-linear"]
    p.write_text("lora_target_modules: 3\n")
    with pytest.raises(KitError, match="'lora_target_modules' must be a non-empty list"):
        load_config(str(p))
    for bad, msg in [
        ({"head": "cls"}, "head must be one of"),
        ({"head": "yes-no"}, "answer slot"),
        ({"load_in_4bit": "true"}, "lora_r > 0"),
        ({"lora_r": "-1"}, "lora_r must be >= 0"),
        ({"lora_dropout": "1.5"}, "lora_dropout"),
        ({"lora_target_modules": "all-linear,q_proj"}, "all-linear"),
    ]:
        with pytest.raises(KitError, match=msg):
            load_config("cpu-minilm", bad)


def test_kaggle_configs_load():
    deb = load_config("kaggle-t4-deberta").options
    assert deb.head == "seq-cls" and deb.lora_r == 0 and deb.precision == "fp16"
    qwen = load_config("kaggle-t4-qwen-lora")
    o = qwen.options
    assert o.head == "yes-no" and qwen.template in ANSWER_SLOTS and o.lora_r == 16 and o.gradient_checkpointing


def test_load_in_4bit_needs_cuda_and_bitsandbytes(ckpt, monkeypatch):
    path = ckpt("qwen2")
    cfg = tiny_cfg(path, template="yes-no", lora_r=4, load_in_4bit=True)
    if not torch.cuda.is_available():
        with pytest.raises(KitError, match="CUDA GPU"):
            models.load_for_training(cfg, path, load_tokenizer(path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KitError, match="bitsandbytes"):
        models._bnb_config(torch.float16)


# ---- the yes-no head ----------------------------------------------------------------------------------


def test_append_answer_slot_right_and_left_padding():
    suffix = torch.tensor([7, 8])
    right = torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    ids, mask, pos = models.append_answer_slot(*right, suffix)
    assert ids.tolist() == [[1, 2, 3, 7, 8], [4, 7, 8, 0, 0]] and mask.tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    assert pos.tolist() == [4, 2]
    left = torch.tensor([[1, 2, 3], [0, 0, 4]]), torch.tensor([[1, 1, 1], [0, 0, 1]])
    ids, mask, pos = models.append_answer_slot(*left, suffix)
    assert ids.tolist() == [[1, 2, 3, 7, 8], [0, 0, 4, 7, 8]] and pos.tolist() == [4, 4]
    assert models.append_answer_slot(*right, torch.tensor([], dtype=torch.long))[2].tolist() == [2, 0]


def _yes_no_from(path: Path):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path)
    models.prepare_tokenizer(tok, "decoder")
    ids = models.answer_ids(tok, ANSWER_SLOTS["yes-no"])
    lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return tok, lm, ids, models.YesNoModel(lm, ids["yes_id"], ids["no_id"], ids["suffix_ids"])


TEXTS = ["buy cheap watches now and more", "hello", "you should sue your landlord"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_yes_no_logits_are_the_lm_logits_at_the_answer_slot(ckpt, side):
    tok, lm, ids, model = _yes_no_from(ckpt("llama"))
    tok.padding_side = side
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model(**batch).logits
        for i, t in enumerate(TEXTS):  # one unpadded row at a time: prompt tokens + slot, full LM forward
            row = torch.tensor([tok(t)["input_ids"] + ids["suffix_ids"]])
            want = lm(row).logits[0, -1, [ids["no_id"], ids["yes_id"]]]
            torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-5)
    assert got.shape == (3, 2)


def test_yes_no_loss_is_on_the_answer_token_alone(ckpt):
    tok, lm, ids, model = _yes_no_from(ckpt("qwen2"))
    batch = tok(TEXTS, padding=True, return_tensors="pt")  # right padding: answer positions differ per row
    seen = {}

    def keep_hidden(module, args, output):
        output.last_hidden_state.retain_grad()
        seen["hidden"] = output.last_hidden_state

    def keep_head_input(module, args):
        seen["head_rows"] = args[0].shape

    h1 = lm.model.register_forward_hook(keep_hidden)
    h2 = lm.get_output_embeddings().register_forward_pre_hook(keep_head_input)
    out = model(**batch, labels=torch.tensor([1, 0, 1]))
    h1.remove(), h2.remove()
    out.loss.backward()
    # The LM head runs on one position per row (no per-position vocabulary logits elsewhere) ...
    assert seen["head_rows"] == (3, lm.config.hidden_size)
    # ... and the loss's gradient w.r.t. every position's final hidden state (the LM head's input,
    # so the LM's logits there) is zero except at the answer position.
    grad = seen["hidden"].grad.abs().sum(-1)
    _, _, answer = models.append_answer_slot(batch["input_ids"], batch["attention_mask"], model.suffix_ids)
    for i, pos in enumerate(answer.tolist()):
        assert grad[i, pos] > 0
        assert torch.count_nonzero(grad[i]) == 1
    # the loss is cross-entropy over [No, Yes] at that position
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 0, 1])))


def test_answer_ids_errors():
    class Tok:  # every word starts with the same token
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [5, len(text)]}

    with pytest.raises(KitError, match="start with the same token"):
        models.answer_ids(Tok(), AnswerSlot("Answer:", " Yes", " No"))

    class EosTok:  # appends eos: the slot would come after it
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [{" Yes": 1, " No": 2}.get(text, 3)] + ([9] if add_special_tokens else [])}

    with pytest.raises(KitError, match="add_eos_token"):
        models.answer_ids(EosTok(), AnswerSlot("Answer:", " Yes", " No"))


def test_lora_targets_stay_in_the_backbone(ckpt):
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(str(ckpt("deberta")), num_labels=2)
    targets, full = models.lora_targets(m, ["all-linear"])
    assert sorted(full) == ["classifier", "pooler"]  # the new head and DeBERTa's untrained pooler train in full
    assert targets and all(t.startswith("deberta.") for t in targets)
    only_q = models.lora_targets(m, ["query_proj"])[0]
    assert only_q and all(t.endswith(".query_proj") for t in only_q)
    with pytest.raises(KitError, match="match no linear layer"):
        models.lora_targets(m, ["q_proj"])


# ---- the kit's real train -> predict path ----------------------------------------------------------------


def _base_unchanged(trained, ckpt_dir: Path) -> int:
    """Every base weight of the trained LoRA model equals the checkpoint's; returns how many were compared."""
    from safetensors.torch import load_file

    original = load_file(str(ckpt_dir / "model.safetensors"))
    compared = 0
    for name, p in trained.named_parameters():
        if "lora_" in name or "modules_to_save" in name or "original_module" in name:
            continue
        key = name.removeprefix("lm.").removeprefix("base_model.model.").replace(".base_layer", "")
        if key in original:
            assert torch.equal(p.detach().cpu(), original[key]), key
            assert not p.requires_grad, key
            compared += 1
    return compared


CASES = [
    # (checkpoint, template, head, lora_r, gradient_checkpointing, expected head)
    ("bert", "rule-body", "auto", 0, False, "seq-cls"),
    ("deberta", "rule-body", "auto", 4, False, "seq-cls"),
    ("qwen2", "yes-no-chatml", "auto", 0, False, "yes-no"),
    ("qwen2", "yes-no", "yes-no", 4, True, "yes-no"),
    ("llama", "prompt", "seq-cls", 0, False, "seq-cls"),
    ("llama", "prompt", "auto", 4, False, "seq-cls"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "template", "head", "lora_r", "gc", "want"), CASES, ids=lambda v: str(v))
def test_train_predict(ckpt, tmp_path, monkeypatch, no_network, name, template, head, lora_r, gc, want):
    from jigsaw_kit.pipeline import fit as train
    from jigsaw_kit.pipeline import predict

    path = ckpt(name)
    cfg = tiny_cfg(path, template=template, head=head, lora_r=lora_r, gradient_checkpointing=gc)
    rows = apply_template(frame(), template)
    captured = {}
    real_save = models.save_trained

    def save_and_keep(model, out_dir):
        captured["model"] = model
        return real_save(model, out_dir)

    monkeypatch.setattr(models, "save_trained", save_and_keep)
    run = tmp_path / "run"
    result = train(cfg, rows, run)
    assert any("loss" in h for h in result.log_history)
    model_dir = run / "model"
    meta = json.loads((model_dir / "kit_head.json").read_text())
    assert meta["head"] == want and meta["lora"] == (lora_r > 0)
    assert (model_dir / ("adapter_model.safetensors" if lora_r else "model.safetensors")).is_file()
    assert (model_dir / "config.json").is_file()

    p = predict(run, cfg, rows, show_progress=False)
    assert p.shape == (len(rows),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert len(np.unique(p)) > 1  # depends on the row, not a constant

    if lora_r:
        trained = captured["model"]
        assert _base_unchanged(trained, path) >= 10
        lora_b = [q for n, q in trained.named_parameters() if "lora_B" in n]
        assert lora_b and any(q.abs().sum() > 0 for q in lora_b)  # adapters moved off their zero init
        if want == "seq-cls":  # the new head trains in full, next to the adapters
            assert any("modules_to_save" in n and q.requires_grad for n, q in trained.named_parameters())
        # merged (default) and unmerged adapters give the same probabilities
        unmerged = models.load_for_inference(model_dir, cfg, merge=False)
        tok = load_tokenizer(model_dir)
        batch = tok(rows["input_a"].tolist()[:4], padding=True, return_tensors="pt")
        merged = models.load_for_inference(model_dir, cfg)
        with torch.no_grad():
            torch.testing.assert_close(merged(**batch).logits, unmerged(**batch).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_lora_run_finds_its_base_under_weights(ckpt, tmp_path, monkeypatch):
    from jigsaw_kit.pipeline import fit as train

    path = ckpt("qwen2")
    cfg = tiny_cfg(path, template="yes-no-chatml", lora_r=2, max_steps=1)
    run = tmp_path / "run"
    train(cfg, apply_template(frame(), cfg.template), run)
    meta_path = run / "model" / "kit_head.json"
    meta = json.loads(meta_path.read_text())
    meta.update(base_model=str(tmp_path / "moved"), base_model_name="tiny-qwen")
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(KitError, match="need their base checkpoint"):
        models.load_for_inference(run / "model")
    shutil.copytree(path, tmp_path / "weights" / "tiny-qwen")
    model = models.load_for_inference(run / "model")
    assert type(model).__name__ == "YesNoModel"
