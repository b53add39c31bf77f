"""Learners behind one interface (base.Method: fit, predict, save, load), found by the config's `method`.

options.py    the options of tfidf-lr, hybrid and contrastive (light: loading a config imports it)
rulewise.py   one logistic regression per rule over any features (tfidf and hybrid use it)
tfidf.py      `tfidf-lr`: TF-IDF word + char n-grams, per-rule regressions
embed.py      frozen-encoder sentence embeddings, cached per text
hybrid.py     `hybrid`: TF-IDF + embedding regressions, exact lookup; contrastive.py: the same on a tuned encoder
embedding/    their parts: encoders, the tune (+ its cache), per-rule heads, lookup, pseudo-labels, saved form
batching.py   length-sorted, token-budget batches (embedding and prediction)
transformer/  `transformer`: Hugging Face Trainer fine-tune, heads, LoRA, batched prediction, its options
"""

from __future__ import annotations

import importlib
from pathlib import Path

from jigsaw_kit.core.config import METHODS, Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.base import Method


def method_class(name: str) -> type[Method]:
    """The class registered for a config's `method` (imported on demand: torch only when needed)."""
    if name not in METHODS:
        raise KitError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.")
    module, _, cls = METHODS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:  # e.g. torch missing from an image: the caller drops what needs it, with this reason
        raise KitError(
            f"method {name!r} needs {e.name or 'a module'}, which cannot be imported here ({e}). Install it, or "
            "choose a config whose method does not need it (tfidf-lr needs only scikit-learn)."
        ) from None


def create(cfg: Config) -> Method:
    return method_class(cfg.method)(cfg)


def load(run_dir: Path, cfg: Config) -> Method:
    return method_class(cfg.method).load(Path(run_dir), cfg)
