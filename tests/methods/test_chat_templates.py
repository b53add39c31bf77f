"""Template `yes-no-chat`: the decoder prompt from the tokenizer's own chat template, per family.

The template strings below are written here in each family's format (system/user turns, generation
prompt; Qwen3's non-thinking block, Llama 3's headers and bos, Gemma's refused system role), carried by
tiny offline tokenizers: the derived prompt must equal the kit's hand-written template for that family.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from jigsaw_kit.core.checkpoints import load_tokenizer
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.templates import ANSWER_SLOTS, CHAT, CHATML_PREFIX, chat_prompt, render
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.methods.transformer import modeling as models

from .test_models import frame, make_llama, make_qwen2, tiny_cfg

QWEN3 = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{%- if message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
LLAMA3 = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
# (chat template, tiny checkpoint, the kit's hand-written template for that family, leading special tokens)
FAMILIES = {
    "qwen3": (QWEN3, make_qwen2, "yes-no-qwen3", 0),
    "llama3": (LLAMA3, make_llama, "yes-no-llama3", 1),  # the tokenizer adds bos itself: not twice
    "gemma": (GEMMA, make_llama, "yes-no-gemma", 1),
}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    return {"qwen": make_qwen2(root / "qwen"), "llama": make_llama(root / "llama")}


def _tokenizer(ckpts, make, template):
    tok = load_tokenizer(ckpts["qwen" if make is make_qwen2 else "llama"])
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_prompt_follows_the_familys_chat_template(ckpts, family):
    template, make, named, lead = FAMILIES[family]
    prefix, slot, got_lead = chat_prompt(_tokenizer(ckpts, make, template))
    body = render(CHAT, "No spam.", "buy now")[0]
    assert prefix + body == render(named, "No spam.", "buy now")[0]
    assert slot == ANSWER_SLOTS[named] and got_lead == lead


def test_no_chat_template_keeps_chatml(ckpts):
    tok = _tokenizer(ckpts, make_qwen2, None)
    prefix, slot, lead = chat_prompt(tok)
    assert prefix + render(CHAT, "r", "t")[0] == render("yes-no-chatml", "r", "t")[0]
    assert slot == ANSWER_SLOTS["yes-no-chatml"] and lead == 0


def test_a_template_that_drops_the_messages_is_a_kit_error(ckpts):
    tok = _tokenizer(ckpts, make_qwen2, "{% for m in messages %}<turn>{% endfor %}")
    with pytest.raises(KitError, match="yes-no-chat: the tokenizer's chat template cannot be used"):
        chat_prompt(tok)


def test_insert_prefix_right_and_left_padding():
    prefix = torch.tensor([7, 8])
    ids = torch.tensor([[1, 5, 6, 0], [0, 0, 1, 5]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
    got, got_mask = models.insert_prefix(ids, mask, prefix, lead=1)
    assert got.tolist() == [[1, 7, 8, 5, 6, 0], [0, 0, 1, 7, 8, 5]]
    assert got_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert models.insert_prefix(ids, mask, prefix[:0])[0] is ids  # no prefix: the rows untouched


@pytest.mark.slow
def test_yes_no_chat_trains_and_predicts_with_the_familys_markup(ckpts, tmp_path, monkeypatch):
    from jigsaw_kit import pipeline

    path = tmp_path / "llama"
    shutil.copytree(ckpts["llama"], path)
    cfg_file = path / "tokenizer_config.json"
    cfg_json = json.loads(cfg_file.read_text())
    cfg_json["chat_template"] = LLAMA3
    cfg_file.write_text(json.dumps(cfg_json))
    (path / "chat_template.jinja").write_text(LLAMA3)
    cfg = tiny_cfg(path, template=CHAT, head="yes-no", max_steps=2)
    rows = apply_template(frame(), CHAT)
    pipeline.fit(cfg, rows, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model" / "kit_head.json").read_text())
    tok = load_tokenizer(tmp_path / "run" / "model")
    prefix = render("yes-no-llama3", "", "")[0].split("Rule: ")[0]
    assert meta["prefix_ids"] == tok(prefix, add_special_tokens=False)["input_ids"] and meta["lead"] == 1
    assert meta["suffix_ids"] == tok(ANSWER_SLOTS["yes-no-llama3"].suffix, add_special_tokens=False)["input_ids"]
    preds = pipeline.predict(tmp_path / "run", cfg, rows, show_progress=False)
    assert np.isfinite(preds).all() and len(np.unique(preds)) > 1


def test_named_templates_are_unchanged():
    # existing configs keep their prompts: yes-no-chat is a new name, the others render as before
    assert render("yes-no-chatml", "r", "t")[0].startswith(CHATML_PREFIX + "Rule: r")
    assert ANSWER_SLOTS[CHAT] == ANSWER_SLOTS["yes-no-chatml"]
