"""The yes-no head: a causal LM read as a 2-class classifier by the word it would answer.

The prompt (a `yes-no*` template) is followed by its answer slot, and the 2-class logits are
[logit(No), logit(Yes)] at the slot's last position, so softmax(...)[:, 1] =
sigmoid(logit(Yes) - logit(No)); the loss is cross-entropy on that one position (`YesNoModel`).
torch is imported on first use: importing this module stays light.
"""

from __future__ import annotations

import functools
from typing import Any


def insert_prefix(input_ids, attention_mask, prefix_ids, lead: int = 0, pad_id: int = 0):
    """(ids, mask): prefix_ids written into every row after its first `lead` real tokens (a bos).

    Works for right and left padding: the row's later tokens (and right pads) move P columns right.
    """
    import torch

    p = int(prefix_ids.numel())
    if p == 0:
        return input_ids, attention_mask
    bsz, t = input_ids.shape
    idx = torch.arange(t, device=input_ids.device).expand(bsz, t)
    first = torch.where(attention_mask.bool(), idx, torch.full_like(idx, t)).min(dim=1).values
    at = (first + lead).clamp(max=t)[:, None]
    moved = idx + p * (idx >= at)
    ids = input_ids.new_full((bsz, t + p), pad_id).scatter_(1, moved, input_ids)
    mask = attention_mask.new_zeros((bsz, t + p)).scatter_(1, moved, attention_mask)
    pos = at + torch.arange(p, device=input_ids.device)[None, :]
    ids.scatter_(1, pos, prefix_ids.to(ids.device, ids.dtype)[None, :].expand(bsz, p))
    mask.scatter_(1, pos, torch.ones_like(pos, dtype=mask.dtype))
    return ids, mask


def append_answer_slot(input_ids, attention_mask, suffix_ids, pad_id: int = 0):
    """(ids, mask, answer_pos): each row's suffix written right after its last non-pad token.

    Works for right and left padding: a right-padded row's suffix overwrites its first pads, a
    left-padded row's goes into the S new columns. answer_pos is the index of the last suffix token
    (the last prompt token when the suffix is empty): the position whose next-token logits score.
    """
    import torch

    bsz, t = input_ids.shape
    s = int(suffix_ids.numel())
    mask = attention_mask.bool()
    idx = torch.arange(t, device=input_ids.device).expand(bsz, t)
    last = torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=1).values
    if s == 0:
        return input_ids, attention_mask, last
    ids = torch.cat([input_ids, input_ids.new_full((bsz, s), pad_id)], dim=1)
    new_mask = torch.cat([attention_mask, attention_mask.new_zeros((bsz, s))], dim=1)
    pos = last[:, None] + 1 + torch.arange(s, device=input_ids.device)[None, :]
    ids.scatter_(1, pos, suffix_ids.to(ids.device, ids.dtype)[None, :].expand(bsz, s))
    new_mask.scatter_(1, pos, torch.ones_like(pos, dtype=new_mask.dtype))
    return ids, new_mask, last + s


def unwrap_peft(lm: Any) -> Any:
    """The model under a peft wrapper (the model itself when there is none)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def answer_logits(model: Any, input_ids, attention_mask=None):
    """A YesNoModel's next-token logits (batch, vocab) at each row's answer position: the prefix and the
    answer slot written into the rows, the LM body run once, the LM head applied to that position only."""
    import torch

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    input_ids, attention_mask = insert_prefix(input_ids, attention_mask, model.prefix_ids, model.lead)
    ids, mask, answer_pos = append_answer_slot(input_ids, attention_mask, model.suffix_ids)
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # padding-side agnostic
    causal = model.causal_lm
    out = causal.base_model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
    hidden = out.last_hidden_state
    h = hidden[torch.arange(hidden.shape[0], device=hidden.device), answer_pos]
    logits = causal.get_output_embeddings()(h)
    text_cfg = causal.config.get_text_config() if hasattr(causal.config, "get_text_config") else causal.config
    cap = getattr(text_cfg, "final_logit_softcapping", None)
    if cap:  # Gemma 2/3 cap the LM logits; the yes-no logits are those same numbers
        logits = torch.tanh(logits / cap) * cap
    return logits


@functools.cache
def yes_no_class():
    """The YesNoModel class, defined on first use so that importing this module does not import torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from transformers.modeling_outputs import SequenceClassifierOutput

    class _YesNoModel(nn.Module):
        """A causal LM read as a 2-class classifier: logits [No, Yes] at the answer position.

        forward(input_ids, attention_mask, labels) appends the answer slot to every row, runs the
        LM body once, applies the LM head to the answer position only (no (batch, seq, vocab)
        tensor), and returns SequenceClassifierOutput(loss, logits). The loss is cross-entropy
        over {No, Yes} at that single position: no other position reaches the loss.
        """

        accepts_loss_kwargs = False  # the Trainer must average over gradient accumulation itself
        main_input_name = "input_ids"

        def __init__(
            self,
            lm: Any,
            yes_id: int,
            no_id: int,
            suffix_ids: list[int],
            prefix_ids: list[int] | tuple[()] = (),
            lead: int = 0,
        ):
            super().__init__()
            self.lm = lm
            self.yes_id, self.no_id = int(yes_id), int(no_id)
            self.register_buffer("suffix_ids", torch.tensor(suffix_ids, dtype=torch.long), persistent=False)
            # yes-no-chat: the chat markup before the body, after the tokenizer's `lead` special tokens
            self.register_buffer("prefix_ids", torch.tensor(list(prefix_ids), dtype=torch.long), persistent=False)
            self.lead = int(lead)
            causal = unwrap_peft(lm)
            for attr in ("quantization_method", "hf_device_map"):  # the Trainer must not .to() a 4-bit model
                if getattr(causal, attr, None) is not None:
                    setattr(self, attr, getattr(causal, attr))

        @property
        def config(self):
            return self.lm.config

        @property
        def causal_lm(self):
            return unwrap_peft(self.lm)

        def token_logits(self, input_ids, attention_mask=None):
            """Next-token logits (batch, vocab) at each row's answer position."""
            return answer_logits(self, input_ids, attention_mask)

        def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None):
            logits = self.token_logits(input_ids, attention_mask)[:, [self.no_id, self.yes_id]].float()
            loss = F.cross_entropy(logits, labels.long().view(-1)) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    _YesNoModel.__name__ = _YesNoModel.__qualname__ = "YesNoModel"
    _YesNoModel.__module__ = __name__
    return _YesNoModel


def __getattr__(name: str):  # `from ...transformer.yes_no import YesNoModel` works too
    if name == "YesNoModel":
        return yes_no_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
