"""Loading any local Hugging Face checkpoint for training and inference, LoRA, and saving the trained model.

    model = load_for_training(cfg, model_path, tokenizer)   # what the Trainer trains
    save_trained(model, run_dir / "model")                  # full weights, or LoRA adapters + kit_head.json
    model = load_for_inference(run_dir / "model", cfg)      # model(**batch).logits has shape (batch, 2)

Which head a checkpoint gets, and how its kind is told from config.json: heads.py; the yes-no head
of decoder LLMs: yes_no.py.

LoRA (`lora_r` > 0, peft): adapters on the backbone's linear layers; everything outside the
backbone (the new classification head, DeBERTa's pooler) is trained in full (modules_to_save);
the base weights stay frozen. `load_in_4bit` loads that frozen base in NF4 (QLoRA; bitsandbytes,
CUDA only). A LoRA run saves only the adapters (+ head); inference reloads the base checkpoint,
applies the adapters and merges them into the weights (kept unmerged on a 4-bit base).
"""

from __future__ import annotations

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
from jigsaw_kit.core.templates import ANSWER_SLOTS, CHAT, chat_prompt
from jigsaw_kit.methods.transformer.heads import (
    DECODER,
    ENCODER,
    SEQ_CLS,
    YES_NO,
    answer_ids,
    backbone_kind,
    prepare_tokenizer,
    resolve_head,
)
from jigsaw_kit.methods.transformer.yes_no import append_answer_slot, insert_prefix, unwrap_peft, yes_no_class

# Callers and tests reach these through this module, as before the split into heads.py and yes_no.py
__all__ = [
    "DECODER", "ENCODER", "SEQ_CLS", "YES_NO", "answer_ids", "append_answer_slot", "backbone_kind", "insert_prefix",
    "load_for_inference", "load_for_training", "load_pretrained", "lora_targets", "prepare_tokenizer", "read_head",
    "resolve_head", "resolve_precision", "save_trained", "yes_no_class",
]  # fmt: skip

log = logging.getLogger(__name__)

HEAD_FILE = "kit_head.json"  # how to rebuild the trained model from <run_dir>/model
HEAD_FORMAT = 1


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

    targets, full = lora_targets(model, cfg.options.lora_target_modules)
    lora = LoraConfig(
        r=cfg.options.lora_r,
        lora_alpha=cfg.options.lora_alpha,
        lora_dropout=cfg.options.lora_dropout,
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
    log.info("LoRA r=%d on %d layers; trainable %d of %d parameters", lora.r, len(targets), trainable, total)
    return peft_model


def load_for_training(cfg: Config, model_path: Path, tokenizer: Any):
    """The model the Trainer trains, per the options head / lora_r / load_in_4bit / gradient_checkpointing.

    Mutates `tokenizer` for decoders (pad token, no token_type_ids); save it after training as usual.
    The returned model carries `kit_head` (a dict) that `save_trained` writes next to the weights.
    """
    o = cfg.options
    model_path = Path(model_path)
    kind = backbone_kind(read_model_config(model_path))
    head = resolve_head(o.head, kind, cfg.template)
    prepare_tokenizer(tokenizer, kind)
    meta: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "head": head,
        "backbone": kind,
        "template": cfg.template,
        "lora": o.lora_r > 0,
        "load_in_4bit": o.load_in_4bit,
        "base_model": str(model_path.resolve()),
        "base_model_name": o.model,
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

    dtype = (_half_dtype(precision) if o.lora_r > 0 else None) or torch.float32
    quant = _bnb_config(dtype) if o.load_in_4bit else None
    model = _load_backbone(model_path, head, dtype, quant)
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # no KV cache in training (and it conflicts with checkpointing)
    if o.load_in_4bit:
        model = _peft().prepare_model_for_kbit_training(model, use_gradient_checkpointing=o.gradient_checkpointing)
    elif o.gradient_checkpointing:
        model.activation_checkpointing_enable()  # non-reentrant; also makes embedding outputs require grad
    if o.lora_r > 0:
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
        config = unwrap_peft(lm).config.to_dict()
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
    """The base checkpoint of a LoRA run: the recorded path, else the name under weights/, else the config's model."""
    candidates = [meta.get("base_model"), meta.get("base_model_name"), cfg.options.model if cfg is not None else None]
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
    quant = _bnb_config(dtype) if cfg is not None and cfg.options.load_in_4bit else None
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

    precision = cfg.options.precision
    if precision != "auto":
        if precision in ("fp16", "bf16") and not torch.cuda.is_available():
            raise KitError(f"precision {precision} needs a CUDA GPU; use precision: auto or fp32 on CPU.")
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    major, _ = torch.cuda.get_device_capability()
    return "bf16" if major >= 8 and torch.cuda.is_bf16_supported() else "fp16"


def __getattr__(name: str):  # `models.YesNoModel` works too (the class is built on first use: torch)
    if name == "YesNoModel":
        return yes_no_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
