"""Sentence embeddings from a frozen encoder: mean-pooled, L2-normalised last hidden states.

all-MiniLM-L6-v2 was trained as a sentence encoder with exactly this pooling, so its
embeddings are useful without fine-tuning: a logistic regression on them per rule (hybrid.py)
learns a rule from its few hundred labelled examples in seconds on CPU.

Embeddings are cached per (checkpoint, max_length, text) in the process: cross-validation
refits on overlapping texts fold after fold, and the encoder dominates the cost. Below that sits a
disk cache (embed_cache.py) shared by every process, keyed by the checkpoint's content.

Where the encoder runs (PyTorch fp32 or bf16, ONNX Runtime fp32 or int8) is `backend` (embed_backends.py);
both caches keep each backend's vectors apart, so vectors of different backends never mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jigsaw_kit.core.checkpoints import check_max_length, load_tokenizer, read_model_config, text_model_problem
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.memory import hold_mmap_threshold
from jigsaw_kit.methods.batching import token_budget_batches
from jigsaw_kit.methods.embed_backends import REFERENCE, BackendUnavailable, make_forward, pooling_tag, resolve_backend
from jigsaw_kit.methods.embed_cache import EmbeddingCache, cache_root, checkpoint_fingerprint
from jigsaw_kit.methods.transformer.modeling import load_pretrained

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, str], dict[str, np.ndarray]] = {}  # (encoder, max_length, backend) -> vectors
_ENCODERS: dict[tuple[str, int], tuple] = {}  # loaded once per process: fit, predict and CV folds share it
_DISK: dict[tuple[str, str, int, str], EmbeddingCache] = {}  # one per namespace: its chunks are read once per process
_FORWARDS: dict[tuple[str, int, str], object] = {}  # (encoder, max_length, backend) -> its forward (an ORT session)
_BROKEN: set[tuple[str, str]] = set()  # (encoder, backend) that could not be prepared: torch-fp32 from then on


def load_encoder(model_path: Path, max_length: int):
    """(tokenizer, model) of a text checkpoint, or a KitError saying why it cannot embed text."""
    key = (str(Path(model_path).resolve()), max_length)
    if key not in _ENCODERS:
        _ENCODERS[key] = _load_encoder(Path(model_path), max_length)
    return _ENCODERS[key]


def _load_encoder(model_path: Path, max_length: int):
    from transformers import AutoModel

    problem = text_model_problem(read_model_config(model_path).get("model_type"))
    if problem:
        raise KitError(
            f"cannot load {model_path} as a text encoder: {problem}. "
            "Point `model` at a text checkpoint such as all-MiniLM-L6-v2."
        )
    tokenizer = load_tokenizer(model_path)
    check_max_length(max_length, model_path, tokenizer)
    return tokenizer, load_pretrained(AutoModel, model_path, "text encoder").eval()


def _forward(model_path: Path, max_length: int, backend: str, model, device):
    key = (_identity(model_path), max_length, backend)
    if key not in _FORWARDS:
        _FORWARDS[key] = make_forward(backend, model_path, model, device)
    return _FORWARDS[key]


def _encode_uncached(
    model_path: Path, texts: list[str], max_length: int, token_budget: int, backend: str = REFERENCE
) -> np.ndarray:
    import torch

    hold_mmap_threshold()  # else the heap fragments over a long pass of varying batch shapes (core/memory.py)
    tokenizer, model = load_encoder(model_path, max_length)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    forward = _forward(model_path, max_length, backend, model, device)
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    batches = token_budget_batches(lengths, token_budget)
    with torch.inference_mode():
        for idx in tqdm(batches, desc="embed", unit="batch", disable=len(batches) < 5):
            feats = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")
            feats = {k: v.to(device) for k, v in feats.items()}
            hidden = forward(feats)
            mask = feats["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return out


def _disk_cache(model_path: Path, max_length: int, backend: str = REFERENCE) -> EmbeddingCache | None:
    """The disk cache for this checkpoint, or None when it is off or the folder is not a checkpoint."""
    root = cache_root()
    if root is None:
        return None
    try:
        fingerprint = checkpoint_fingerprint(model_path)
    except (KitError, OSError) as e:
        log.debug("no disk embedding cache for %s: %s", model_path, e)
        return None
    key = (str(root), fingerprint, max_length, backend)
    if key not in _DISK:
        # the vectors' width is the encoder's hidden_size: a chunk of another width in the namespace is a miss
        try:
            width = read_model_config(model_path).get("hidden_size")
        except (KitError, AttributeError):  # no width to declare: the cache takes its namespace's majority
            width = None
        width = width if isinstance(width, int) else None
        _DISK[key] = EmbeddingCache(root, fingerprint, max_length, pooling_tag(backend), width=width)
    return _DISK[key]


def _identity(model_path: Path) -> str:
    """The in-process cache's key: the checkpoint's content where it can be read (a tuned encoder saved
    again under the same path is another encoder), else its path."""
    try:
        return checkpoint_fingerprint(model_path)
    except (KitError, OSError):
        return str(model_path.resolve())


def embed_texts(
    model_path: Path, texts: Sequence[str], max_length: int, token_budget: int = 16384, backend: str = REFERENCE
) -> np.ndarray:
    """(len(texts), hidden) float32 unit vectors, one per text, in the given order.

    backend: a config's embed_backend; one that cannot run here (embed_backends.py) gives torch-fp32's vectors."""
    backend = resolve_backend(backend)
    if backend != REFERENCE and (_identity(Path(model_path)), backend) in _BROKEN:
        backend = REFERENCE
    try:
        return _embed_with(Path(model_path), texts, max_length, token_budget, backend)
    except BackendUnavailable as e:
        _BROKEN.add((_identity(Path(model_path)), backend))
        log.warning("embed_backend %s cannot run for %s (%s); using torch-fp32", backend, Path(model_path).name, e)
        return _embed_with(Path(model_path), texts, max_length, token_budget, REFERENCE)


def _embed_with(model_path: Path, texts: Sequence[str], max_length: int, token_budget: int, backend: str) -> np.ndarray:
    cache = _CACHE.setdefault((_identity(model_path), max_length, backend), {})
    texts = [str(t) for t in texts]
    missing = sorted({t for t in texts if t not in cache})
    if missing:
        disk = _disk_cache(model_path, max_length, backend)
        hits = disk.get(missing) if disk is not None else {}
        cache.update(hits)
        missing = [t for t in missing if t not in hits]
        if missing:
            log.info("embedding %d new texts with %s (%s)", len(missing), model_path.name, backend)
            if backend == REFERENCE:  # called as before, so a stand-in _encode_uncached keeps its signature
                vectors = _encode_uncached(model_path, missing, max_length, token_budget)
            else:
                vectors = _encode_uncached(model_path, missing, max_length, token_budget, backend)
            if disk is not None:
                disk.put(missing, vectors)
            for t, v in zip(missing, vectors):
                cache[t] = v
        if disk is not None:
            log.info("embedding cache %s: %s hits, %s new", disk.folder, f"{len(hits):,}", f"{len(missing):,}")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cache[t] for t in texts])
