"""What a checkpoint is (encoder or decoder LLM) and which head it gets; the tokenizer's part in that head.

Which kind of backbone a checkpoint is comes from its config.json, never from its name
(`backbone_kind`): a *decoder* LLM is a model_type that transformers can load as a causal LM
but not as a masked LM, and that is not an encoder-decoder. Encoders (BERT, RoBERTa, DeBERTa-v2,
ModernBERT, ...) all have a masked-LM class (some also have a causal-LM class); decoder-only LLMs
(Qwen2/3, Llama, Mistral, Gemma, Phi, ...) have none.

Heads (option `head`):
- `seq-cls`: AutoModelForSequenceClassification, a new 2-way linear head. Encoders pool the first
  token; decoders read the last non-pad token (the pad token comes from eos when the tokenizer
  has none, and model.config.pad_token_id is set to it).
- `yes-no` (decoders only): the causal LM itself scores the answer word (yes_no.py).
- `auto`: seq-cls for encoders; for decoders yes-no when the template has an answer slot, else seq-cls.
"""

from __future__ import annotations

import logging
from typing import Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.templates import ANSWER_SLOTS, AnswerSlot, render

log = logging.getLogger(__name__)

ENCODER, DECODER = "encoder", "decoder"
SEQ_CLS, YES_NO = "seq-cls", "yes-no"


def backbone_kind(config: dict[str, Any]) -> str:
    """ENCODER or DECODER from a config.json dict (the rule is in the module docstring)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.get("model_type")
    if not model_type:
        raise KitError("config.json has no model_type: not a Hugging Face transformers checkpoint.")
    causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if causal and not masked and not config.get("is_encoder_decoder", False):
        return DECODER
    return ENCODER


def _pair_template(template: str) -> bool:
    return render(template, "rule", "text", "subreddit")[1] is not None


def resolve_head(head: str, kind: str, template: str) -> str:
    """The head to build for config `head` on a backbone of this kind, or a KitError saying why not."""
    if head == "auto":
        head = YES_NO if kind == DECODER and template in ANSWER_SLOTS else SEQ_CLS
    if head == YES_NO and kind != DECODER:
        raise KitError(
            "head yes-no scores the answer token of a causal LM, and this checkpoint is an encoder. "
            "Use head: seq-cls (or auto) with an encoder, or a decoder LLM checkpoint."
        )
    if head == YES_NO and template not in ANSWER_SLOTS:
        raise KitError(f"head yes-no needs a template with an answer slot, one of {sorted(ANSWER_SLOTS)}.")
    if kind == DECODER and _pair_template(template):
        raise KitError(
            f"template {template!r} gives a sentence pair, which a decoder LLM reads as two texts glued together. "
            f"Use a single-sequence template: 'prompt' (head seq-cls) or one of {sorted(ANSWER_SLOTS)} (head yes-no)."
        )
    return head


def prepare_tokenizer(tokenizer: Any, kind: str) -> None:
    """Decoders: a pad token (eos when missing) and no token_type_ids (decoder forwards do not take them)."""
    if kind != DECODER:
        return
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise KitError("the tokenizer has neither a pad nor an eos token: set pad_token in tokenizer_config.json.")
        tokenizer.pad_token = tokenizer.eos_token
    if "token_type_ids" in tokenizer.model_input_names:
        tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]


def answer_ids(tokenizer: Any, slot: AnswerSlot) -> dict[str, Any]:
    """Token ids of the answer slot: its suffix, and the first token of the yes and no words.

    A word that is several tokens is scored by its first sub-token (logged); two words that start
    with the same token cannot be told apart and are an error.
    """
    ids = {}
    for key, word in (("yes", slot.yes), ("no", slot.no)):
        toks = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not toks:
            raise KitError(f"the tokenizer maps the answer word {word!r} to no tokens.")
        if len(toks) > 1:
            log.warning("answer word %r is %d tokens; scoring its first token (id %d)", word, len(toks), toks[0])
        ids[f"{key}_id"] = int(toks[0])
    if ids["yes_id"] == ids["no_id"]:
        raise KitError(
            f"answer words {slot.yes!r} and {slot.no!r} start with the same token ({ids['yes_id']}): "
            "the yes-no head cannot tell them apart with this tokenizer."
        )
    ids["suffix_ids"] = [int(t) for t in tokenizer(slot.suffix, add_special_tokens=False)["input_ids"]]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    if full[len(full) - len(plain) :] != plain:
        raise KitError(
            "the tokenizer appends special tokens (e.g. eos) after the text, which would sit between the prompt and "
            "the answer slot: set add_eos_token to false in the checkpoint's tokenizer_config.json."
        )
    return ids
