"""MEMBERS = "auto": one member per attached checkpoint, told apart by its config.json, never by folder names.

Every folder under /kaggle/input (datasets and Kaggle Models, any mount layout, bounded depth) that holds a
config.json is a candidate; its subfolders are not searched (a sentence-transformers folder's 1_Pooling has a
config.json of its own). Then, by what the folder holds:

    the kit's MiniLM (its bundle marker names all-MiniLM-L6-v2)   -> cpu-contrastive, always, and cpu-crossenc (its
                                                                     cross-encoder fine-tune; evidence.py says why)
    a sentence encoder (modules.json / config_sentence_transformers.json) whose model_type transformers
    loads as a text model (the embedding member's own load check, core.checkpoints.text_model_problem)
        -> the embedding member: `encoders` of cpu-contrastive when evidence.extra_encoders_help(), else a
           cpu-hybrid member with it as `model`; and, being an encoder, a fine-tune as below
    an encoder (model_type with a masked-LM class in transformers, not a decoder)
        -> kaggle-t4-round3 (the leaderboard's recipe for base encoders) with `model` = it
           (kaggle-t4-deberta-round3 for model_type deberta-v2)
    a decoder LLM (model_type of the Qwen2/3, Llama, Gemma, Phi, Mistral families, architectures *ForCausalLM)
        -> kaggle-t4-qwen-lora with `model` = it
    anything else -> listed as skipped, with the reason

Weights and the order of preference come from evidence.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jigsaw_kit.core.checkpoints import DEFAULT_MODEL, WEIGHT_FILES, text_model_problem, weight_files
from jigsaw_kit.kaggle import evidence
from jigsaw_kit.kaggle.members import Member
from jigsaw_kit.kaggle.wheels import MODEL_MARKER

MAX_DEPTH = 8  # /kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version> is 6 deep
SENTENCE_FILES = ("modules.json", "config_sentence_transformers.json")
DECODER_TYPES = frozenset(
    {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "llama", "gemma", "gemma2", "gemma3", "gemma3_text", "phi", "phi3"}
    | {"mistral", "mixtral"}
)
BIG_DECODER_BYTES = 9e9  # fp16 weights above this leave no room to train on a 16 GB T4 without load_in_4bit
# Path parts that say nothing about the model (Kaggle's mount layout): left out of member names.
_FRAMEWORKS = {"transformers", "pytorch", "other"}
_LAYOUT = {"input", "kaggle", "datasets", "models", "default"} | _FRAMEWORKS

DEFAULT, EMBED, FINE_TUNE, LORA = "default", "embed", "fine-tune", "lora"


@dataclass(frozen=True)
class Found:
    path: Path
    roles: tuple[str, ...]  # of DEFAULT, EMBED, FINE_TUNE, LORA; () = skipped, `why` says why
    model_type: str
    why: str
    label: str  # for member names and printouts only
    unusable: bool = False  # a config.json that cannot be read: the plan stops (or drops, on the rerun)


def find_checkpoints(root: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Folders holding a config.json under root, their own subfolders not searched."""
    root = Path(root)
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        depth = len(Path(dirpath).relative_to(root).parts)
        if real in seen or "config.json" in filenames or depth >= max_depth:
            dirnames[:] = []  # a link loop, a checkpoint's own subfolders, or too deep
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if "config.json" in filenames and depth > 0:
            found.append(Path(dirpath))
    return sorted(found)


def _marker_name(path: Path) -> str:
    try:
        return str(json.loads((path / MODEL_MARKER).read_text(encoding="utf-8")).get("name", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _label(path: Path, root: Path, config: dict[str, Any]) -> str:
    named = _marker_name(path) or str(config.get("_name_or_path") or "").rstrip("/").rsplit("/", 1)[-1]
    if not named:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = path.parts
        # A Kaggle Model mounts as <model>/<framework>/<variation>/<version>: model and variation name it.
        at = next((i for i, p in enumerate(parts) if p.lower() in _FRAMEWORKS), None)
        pick = parts[max(at - 1, 0) : at + 2] if at is not None else parts[-1:]
        named = "-".join(p for p in pick if not p.isdigit() and p.lower() not in _LAYOUT) or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", named).strip("-").lower() or "model"


def _weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in weight_files(path))


def masked_lm_types() -> Collection[str]:
    """model_types transformers has a masked-LM class for: the encoders (imports transformers)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return MODEL_FOR_MASKED_LM_MAPPING_NAMES


def classify(path: Path, root: Path, masked_lm: Collection[str]) -> Found:
    """What the checkpoint at path is good for, from its config.json and the files beside it."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        why = f"its config.json cannot be read ({e}): re-upload that dataset from a good copy"
        return Found(path, (), "", why, _label(path, root, {}), unusable=True)
    label = _label(path, root, config)
    model_type = str(config.get("model_type") or "")
    if not model_type:
        return Found(path, (), "", "config.json has no model_type: not a transformers checkpoint", label)
    if not any((path / f).is_file() for f in WEIGHT_FILES) and not list(path.glob("*.safetensors")):
        return Found(path, (), model_type, "no weights file beside config.json (an adapter or a config only)", label)
    if _marker_name(path).lower() == DEFAULT_MODEL.lower():
        return Found(path, (DEFAULT,), model_type, "the kit's MiniLM (its bundle marker)", label)
    sentence = any((path / f).is_file() for f in SENTENCE_FILES)
    decoder = model_type in DECODER_TYPES
    encoder = model_type in masked_lm and not decoder
    # the run's own load check (embed.load_encoder, the decoder's AutoModel): a folder it would refuse is skipped
    problem = text_model_problem(model_type) if sentence or decoder else None
    if problem:
        what = "a sentence encoder" if sentence else "a decoder LLM"
        why = f"{what}, but {problem} (the installed version cannot load it): its member would fail at run time"
        return Found(path, (), model_type, why, label)
    if sentence:
        roles = (EMBED, FINE_TUNE) if encoder else (EMBED,)
        what = "a sentence encoder (sentence-transformers files)" + (f", an encoder ({model_type})" if encoder else "")
        return Found(path, roles, model_type, what, label)
    if decoder:
        archs = [str(a) for a in config.get("architectures") or []]
        if not any(a.endswith("ForCausalLM") for a in archs):
            why = f"model_type {model_type}, architectures {archs or 'missing'}: not *ForCausalLM, not a text-only LLM"
            return Found(path, (), model_type, why, label)
        what = f"a decoder LLM ({model_type}, {archs[0]})"
        size = _weights_bytes(path)
        if size > BIG_DECODER_BYTES:
            what += f"; {size / 1e9:.0f} GB of weights may not train on a 16 GB T4: consider load_in_4bit: true"
        return Found(path, (LORA,), model_type, what, label)
    if encoder:
        return Found(path, (FINE_TUNE,), model_type, f"an encoder ({model_type} has a masked-LM class)", label)
    why = f"model_type {model_type}: neither an encoder nor a decoder LLM the kit tunes"
    return Found(path, (), model_type, why, label)


def _identity(path: Path) -> tuple:
    """Same config.json and same weight file sizes: the same checkpoint attached twice (a bundle and a Kaggle Model)."""
    sizes = sorted(f.stat().st_size for f in weight_files(path))
    return (json.dumps(json.loads((path / "config.json").read_text(encoding="utf-8")), sort_keys=True), tuple(sizes))


def _distinct(found: list[Found]) -> tuple[Found, ...]:
    """Each checkpoint once: a copy of one already found is skipped (the kit's MiniLM wins over its copies)."""
    first: dict[tuple, Path] = {}
    out = {}
    for f in sorted(found, key=lambda f: DEFAULT not in f.roles):
        if f.roles:
            key = _identity(f.path)
            if key in first:
                f = Found(f.path, (), f.model_type, f"the same checkpoint as {first[key]}", f.label)
            first.setdefault(key, f.path)
        out[f.path] = f
    return tuple(out[f.path] for f in found)


def _member(name: str, config: str, overrides: dict[str, Any], recipe: str) -> Member:
    e = evidence.evidence(recipe)
    return Member(name, config, overrides, float(e["weight"]) if e else 1.0, recipe)


def auto_members(
    root: Path, masked_lm: Collection[str] | None = None
) -> tuple[tuple[Member, ...], tuple[Found, ...], str]:
    """(members, every checkpoint found, the sentence-encoder decision) for what is attached under root."""
    root = Path(root)
    masked_lm = masked_lm_types() if masked_lm is None else masked_lm
    found = _distinct([classify(p, root, masked_lm) for p in find_checkpoints(root)])
    minilm = next((f for f in found if DEFAULT in f.roles), None)
    # Without the kit's MiniLM attached the member still stands: the plan then says which dataset to attach.
    default = {"model": str(minilm.path)} if minilm else {}
    members = [_member("cpu-contrastive", "cpu-contrastive", default, "cpu-contrastive")]
    embed = [f for f in found if EMBED in f.roles]
    together, why = evidence.extra_encoders_help()
    if embed and together:
        members[0] = _member(
            "cpu-contrastive",
            "cpu-contrastive",
            {**default, "encoders": [str(f.path) for f in embed]},
            "cpu-contrastive-encoders",
        )
    elif embed:
        for f in embed:
            members.append(_member(f"cpu-hybrid-{f.label}", "cpu-hybrid", {"model": str(f.path)}, "cpu-hybrid-encoder"))
    tuned = []
    if minilm is not None:  # its cross-encoder fine-tune: the curve that grows fastest with the hidden test's labels
        tuned.append(_member("cpu-crossenc", "cpu-crossenc", default, "cpu-crossenc"))
    for f in found:
        if FINE_TUNE in f.roles:  # the leaderboard's recipe for base encoders (configs/kaggle-t4-round3.yaml)
            recipe = "kaggle-t4-deberta" if f.model_type == "deberta-v2" else "kaggle-t4"
            tuned.append(_member(f"{recipe}-{f.label}", f"{recipe}-round3", {"model": str(f.path)}, recipe))
        if LORA in f.roles:
            lora = "kaggle-t4-qwen-lora"
            # yes-no-chat: the prompt in the checkpoint's own chat template (Qwen3, Llama 3, Gemma, ...), not ChatML
            tuned.append(_member(f"{lora}-{f.label}", lora, {"model": str(f.path), "template": "yes-no-chat"}, lora))
    # Strongest evidence first: fine-tunes take the GPUs round-robin in this order (members.assign_devices).
    members += sorted(tuned, key=lambda m: evidence.rank(m.recipe))
    return _unique(members), found, why if embed else ""


def _unique(members: list[Member]) -> tuple[Member, ...]:
    seen: dict[str, int] = {}
    out = []
    for m in members:
        seen[m.name] = seen.get(m.name, 0) + 1
        name = m.name if seen[m.name] == 1 else f"{m.name}-{seen[m.name]}"
        out.append(Member(name, m.config, m.overrides, m.weight, m.recipe))
    return tuple(out)


def describe(found: tuple[Found, ...], members: tuple[Member, ...], why: str, root: Path) -> list[str]:
    """The settings cell's account of the auto plan: each folder, what it is, the member it became."""
    lines = [f'MEMBERS = "auto": {len(found)} checkpoint folder(s) under {root}']
    for f in found:
        uses = [m.name for m in members if str(f.path) in (m.overrides.get("model"), *m.overrides.get("encoders", ()))]
        if f.unusable:
            lines.append(f"  UNUSABLE {f.path}: {f.why}")
        elif not f.roles:
            lines.append(f"  skipped  {f.path}: {f.why}")
        else:
            lines.append(f"  {f.path}: {f.why} -> {', '.join(uses) or 'none'}")
    if not any(DEFAULT in f.roles for f in found):
        lines.append("  the kit's MiniLM (jigsaw-kit-model-all-minilm-l6-v2) is not attached: cpu-contrastive needs it")
    if why:
        lines.append(f"  sentence encoders: {why}")
    lines.append("  members: " + ", ".join(f"{m.name} ({m.config}, weight {m.weight:g})" for m in members))
    return lines
