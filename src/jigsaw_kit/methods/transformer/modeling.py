"""Backbones, heads and adapters: any local Hugging Face checkpoint, encoder or decoder LLM.

    model = load_for_training(cfg, model_path, tokenizer)   # what the Trainer trains
    save_trained(model, run_dir / "model")                  # full weights, or LoRA adapters + kit_head.json
    model = load_for_inference(run_dir / "model", cfg)      # model(**batch).logits has shape (batch, 2)

Which kind of backbone a checkpoint is comes from its config.json, never from its name
(`backbone_kind`): a *decoder* LLM is a model_type that transformers can load as a causal LM
but not as a masked LM, and that is not an encoder-decoder. Encoders (BERT, RoBERTa, DeBERTa-v2,
ModernBERT, ...) all have a masked-LM class (some also have a causal-LM class); decoder-only LLMs
(Qwen2/3, Llama, Mistral, Gemma, Phi, ...) have none.

Heads (config `head`):
- `seq-cls`: AutoModelForSequenceClassification, a new 2-way linear head. Encoders pool the first
  token; decoders read the last non-pad token (the pad token comes from eos when the tokenizer
  has none, and model.config.pad_token_id is set to it).
- `yes-no` (decoders only): the causal LM itself scores the answer word. The prompt (a `yes-no*`
  template) is followed by its answer slot, and the 2-class logits are [logit(No), logit(Yes)] at
  the slot's last position, so softmax(...)[:, 1] = sigmoid(logit(Yes) - logit(No)); the loss is
  cross-entropy on that one position (`YesNoModel`).
- `auto`: seq-cls for encoders; for decoders yes-no when the template has an answer slot, else seq-cls.

LoRA (`lora_r` > 0, peft): adapters on the backbone's linear layers; everything outside the
backbone (the new classification head, DeBERTa's pooler) is trained in full (modules_to_save);
the base weights stay frozen. `load_in_4bit` loads that frozen base in NF4 (QLoRA; bitsandbytes,
CUDA only). A LoRA run saves only the adapters (+ head); inference reloads the base checkpoint,
applies the adapters and merges them into the weights (kept unmerged on a 4-bit base).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

from jigsaw_kit.core.atomic import write_json
from jigsaw_kit.core.checkpoints import read_model_config, resolve_model, set_offline
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.templates import ANSWER_SLOTS, CHAT, AnswerSlot, chat_prompt, render

log = logging.getLogger(__name__)

ENCODER, DECODER = "encoder", "decoder"
SEQ_CLS, YES_NO = "seq-cls", "yes-no"
HEAD_FILE = "kit_head.json"  # how to rebuild the trained model from <run_dir>/model
HEAD_FORMAT = 1


# ------------------------------------------------------------------------------------------
# What the checkpoint is, and which head it gets
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# The yes-no head
# ------------------------------------------------------------------------------------------


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


def _unwrap_peft(lm: Any) -> Any:
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


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
            causal = _unwrap_peft(lm)
            for attr in ("quantization_method", "hf_device_map"):  # the Trainer must not .to() a 4-bit model
                if getattr(causal, attr, None) is not None:
                    setattr(self, attr, getattr(causal, attr))

        @property
        def config(self):
            return self.lm.config

        @property
        def causal_lm(self):
            return _unwrap_peft(self.lm)

        def token_logits(self, input_ids, attention_mask=None):
            """Next-token logits (batch, vocab) at each row's answer position."""
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            input_ids, attention_mask = insert_prefix(input_ids, attention_mask, self.prefix_ids, self.lead)
            ids, mask, answer_pos = append_answer_slot(input_ids, attention_mask, self.suffix_ids)
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # padding-side agnostic
            causal = self.causal_lm
            out = causal.base_model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
            hidden = out.last_hidden_state
            h = hidden[torch.arange(hidden.shape[0], device=hidden.device), answer_pos]
            logits = causal.get_output_embeddings()(h)
            text_cfg = causal.config.get_text_config() if hasattr(causal.config, "get_text_config") else causal.config
            cap = getattr(text_cfg, "final_logit_softcapping", None)
            if cap:  # Gemma 2/3 cap the LM logits; the yes-no logits are those same numbers
                logits = torch.tanh(logits / cap) * cap
            return logits

        def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None):
            logits = self.token_logits(input_ids, attention_mask)[:, [self.no_id, self.yes_id]].float()
            loss = F.cross_entropy(logits, labels.long().view(-1)) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    _YesNoModel.__name__ = _YesNoModel.__qualname__ = "YesNoModel"
    _YesNoModel.__module__ = __name__
    return _YesNoModel


def __getattr__(name: str):  # `from jigsaw_kit.models import YesNoModel` works too
    if name == "YesNoModel":
        return yes_no_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------
# Loading for training
# ------------------------------------------------------------------------------------------


def _precision(cfg: Config | None) -> str:
    if cfg is None:
        import torch

        return "fp16" if torch.cuda.is_available() else "fp32"
    return resolve_precision(cfg)


def _half_dtype(precision: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)


def _bnb_config(compute_dtype):
    import torch

    if not torch.cuda.is_available():
        raise KitError(
            "load_in_4bit needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has none. "
            "Set load_in_4bit: false (LoRA on a full-precision base) or run on a GPU."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise KitError(
            "load_in_4bit needs the bitsandbytes package, which is not installed: `pip install bitsandbytes` "
            "(on Kaggle, add its wheel to the offline wheels dataset), or set load_in_4bit: false."
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_pretrained(auto_cls, path: Path, what: str, **kwargs):
    set_offline()
    from transformers.utils import logging as hf_logging

    # "Some weights were newly initialized" is expected: the classification head is new.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return auto_cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise KitError(
            f"cannot load {path} as a {what}: {str(e).splitlines()[0]}. "
            "Check that the folder holds a complete checkpoint of an architecture transformers supports."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)


def _load_backbone(path: Path, head: str, dtype, quant, config=None):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"dtype": dtype}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    if head == SEQ_CLS:
        if config is not None:
            kwargs["config"] = config
        else:
            kwargs["num_labels"] = 2
        return load_pretrained(AutoModelForSequenceClassification, path, "sequence classifier", **kwargs)
    return load_pretrained(AutoModelForCausalLM, path, "causal LM", **kwargs)


def _backbone_prefix(model: Any) -> str:
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or not hasattr(model, prefix):
        raise KitError(f"{type(model).__name__} has no backbone submodule (base_model_prefix): LoRA cannot be placed.")
    return prefix


def lora_targets(model: Any, requested: list[str]) -> tuple[list[str], list[str]]:
    """(full names of the backbone's linear layers that get LoRA, top-level modules trained in full).

    LoRA goes only inside the backbone (`model.<base_model_prefix>`), so a new head never gets an
    adapter; every other top-level module with parameters (the head, a new pooler) is saved in full.
    `requested` is ["all-linear"] or layer names matched against the last component of each name.
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    prefix = _backbone_prefix(model)
    linear = [n for n, m in model.named_modules() if n.startswith(prefix + ".") and isinstance(m, (nn.Linear, Conv1D))]
    if requested == ["all-linear"]:
        targets = linear
    else:
        wanted = set(requested)
        targets = [n for n in linear if n.rsplit(".", 1)[-1] in wanted or n in wanted]
    if not targets:
        names = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise KitError(f"lora_target_modules {requested} match no linear layer of the backbone; it has {names}.")
    full = [n for n, child in model.named_children() if n != prefix and any(True for _ in child.parameters())]
    return targets, full


def _peft():
    """The peft package, or a KitError saying how to get it (only LoRA runs need it)."""
    try:
        import peft
    except ImportError:
        raise KitError(
            "lora_r > 0 (and loading a LoRA run) needs the peft package: `pip install peft` "
            "(on Kaggle, add its wheel to the offline wheels dataset), or set lora_r: 0."
        ) from None
    return peft


def _add_lora(model: Any, cfg: Config, head: str):
    import torch

    peft = _peft()
    LoraConfig, TaskType, get_peft_model = peft.LoraConfig, peft.TaskType, peft.get_peft_model

    targets, full = lora_targets(model, cfg.lora_target_modules)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=full if head == SEQ_CLS else None,  # the causal LM head stays frozen in yes-no
        task_type=TaskType.SEQ_CLS if head == SEQ_CLS else None,
        bias="none",
    )
    peft_model = get_peft_model(model, lora)
    for p in peft_model.parameters():  # fp32 master weights for what trains (AMP needs them on a half base)
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    log.info("LoRA r=%d on %d layers; trainable %d of %d parameters", cfg.lora_r, len(targets), trainable, total)
    return peft_model


def load_for_training(cfg: Config, model_path: Path, tokenizer: Any):
    """The model the Trainer trains, per cfg.head / lora_r / load_in_4bit / gradient_checkpointing.

    Mutates `tokenizer` for decoders (pad token, no token_type_ids); save it after training as usual.
    The returned model carries `kit_head` (a dict) that `save_trained` writes next to the weights.
    """
    model_path = Path(model_path)
    kind = backbone_kind(read_model_config(model_path))
    head = resolve_head(cfg.head, kind, cfg.template)
    prepare_tokenizer(tokenizer, kind)
    meta: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "head": head,
        "backbone": kind,
        "template": cfg.template,
        "lora": cfg.lora_r > 0,
        "load_in_4bit": cfg.load_in_4bit,
        "base_model": str(model_path.resolve()),
        "base_model_name": cfg.model,
    }
    if head == YES_NO:
        slot = ANSWER_SLOTS[cfg.template]
        if cfg.template == CHAT:  # the tokenizer's own chat markup, as token ids around the body
            prefix, slot, lead = chat_prompt(tokenizer)
            meta.update(prefix_ids=[int(t) for t in tokenizer(prefix, add_special_tokens=False)["input_ids"]])
            meta.update(lead=lead)
        meta.update(yes=slot.yes, no=slot.no, **answer_ids(tokenizer, slot))
    precision = _precision(cfg)
    # Full fine-tuning keeps fp32 weights (AMP casts per op); a frozen LoRA base can live in half precision.
    import torch

    dtype = (_half_dtype(precision) if cfg.lora_r > 0 else None) or torch.float32
    quant = _bnb_config(dtype) if cfg.load_in_4bit else None
    model = _load_backbone(model_path, head, dtype, quant)
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # no KV cache in training (and it conflicts with checkpointing)
    if cfg.load_in_4bit:
        model = _peft().prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.activation_checkpointing_enable()  # non-reentrant; also makes embedding outputs require grad
    if cfg.lora_r > 0:
        model = _add_lora(model, cfg, head)
    if head == YES_NO:
        model = _yes_no(model, meta)
    model.kit_head = meta
    return model


def _yes_no(lm: Any, meta: dict[str, Any]):
    return yes_no_class()(
        lm, meta["yes_id"], meta["no_id"], meta["suffix_ids"], meta.get("prefix_ids", ()), meta.get("lead", 0)
    )


# ------------------------------------------------------------------------------------------
# Saving and loading the trained model
# ------------------------------------------------------------------------------------------


def save_trained(model: Any, out_dir: Path) -> None:
    """Write the trained model to out_dir: weights (or adapters), config.json and kit_head.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = getattr(model, "kit_head", None)
    lm = model.lm if isinstance(model, yes_no_class()) else model
    if meta is None:  # a model not built by load_for_training: plain Hugging Face save
        lm.save_pretrained(str(out_dir))
        return
    if meta["lora"]:
        lm.save_pretrained(str(out_dir))  # peft: adapter_config.json + adapter weights (+ modules_to_save)
        # config.json: the trained config (pad_token_id, labels), also the marker a run dir is checked for;
        # without quantization_config, so that inference decides for itself whether to load in 4-bit
        config = _unwrap_peft(lm).config.to_dict()
        config.pop("quantization_config", None)
        (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    else:
        lm.save_pretrained(str(out_dir))
    write_json(out_dir / HEAD_FILE, meta)


def read_head(model_dir: Path) -> dict[str, Any]:
    """kit_head.json of a trained model folder; a folder without one is a plain seq-cls model."""
    p = Path(model_dir) / HEAD_FILE
    if not p.is_file():
        return {"head": SEQ_CLS, "lora": False, "load_in_4bit": False}
    meta = json.loads(p.read_text(encoding="utf-8"))
    if meta.get("format", HEAD_FORMAT) > HEAD_FORMAT:
        raise KitError(f"{p} was written by a newer jigsaw-kit (format {meta['format']}); upgrade the kit.")
    return meta


def _find_base(meta: dict[str, Any], model_dir: Path, cfg: Config | None) -> Path:
    """The base checkpoint of a LoRA run: the recorded path, else the name under weights/, else cfg.model."""
    candidates = [meta.get("base_model"), meta.get("base_model_name"), cfg.model if cfg is not None else None]
    for c in candidates:
        if not c:
            continue
        try:
            return resolve_model(c, auto_vendor=False)
        except KitError:
            continue
    raise KitError(
        f"the LoRA adapters in {model_dir} need their base checkpoint, found at none of "
        f"{[c for c in candidates if c]}. Attach it there (on Kaggle: the same model input as for training), "
        "or set `model:` in the config to its folder."
    )


def load_for_inference(model_dir: Path, cfg: Config | None = None, merge: bool = True):
    """The trained model of `model_dir` in eval mode; model(**batch).logits is (batch, 2).

    Weights load in the precision the config resolves to (fp16 on a T4, fp32 on CPU). LoRA
    adapters are merged into the base weights (faster) unless merge=False or the base is 4-bit.
    """
    import torch

    model_dir = Path(model_dir)
    meta = read_head(model_dir)
    head = meta["head"]
    dtype = _half_dtype(_precision(cfg)) or torch.float32
    quant = _bnb_config(dtype) if cfg is not None and cfg.load_in_4bit else None
    if meta["lora"]:
        from transformers import AutoConfig

        base_path = _find_base(meta, model_dir, cfg)
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True) if head == SEQ_CLS else None
        base = _load_backbone(base_path, head, dtype, quant, config=config)
        model = _peft().PeftModel.from_pretrained(base, str(model_dir))
        if merge and quant is None:
            model = model.merge_and_unload()
    else:
        model = _load_backbone(model_dir, head, dtype, quant)
    if head == YES_NO:
        model = _yes_no(model, meta)
    model.kit_head = meta
    return model.eval()


def resolve_precision(cfg: Config) -> str:
    """fp32 on CPU; on CUDA bf16 where the GPU has fast bf16 (Ampere+), else fp16 (T4)."""
    import torch

    if cfg.precision != "auto":
        if cfg.precision in ("fp16", "bf16") and not torch.cuda.is_available():
            raise KitError(f"precision {cfg.precision} needs a CUDA GPU; use precision: auto or fp32 on CPU.")
        return cfg.precision
    if not torch.cuda.is_available():
        return "fp32"
    major, _ = torch.cuda.get_device_capability()
    return "bf16" if major >= 8 and torch.cuda.is_bf16_supported() else "fp16"
