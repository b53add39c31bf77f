"""Encoders: a checkpoint that turns texts into sentence vectors, frozen (embed.py does the work).

A FrozenEncoder is a checkpoint (a name under weights/ or a folder) with how it embeds (max_length, the token
budget of a batch, the inference backend). The name is resolved again whenever it embeds, since the weights
folder may move between fit and predict; `fitted_at`, where it resolved at fit, is the fallback once the name
no longer resolves (a relative path from another working directory). A tuned encoder (tune.py) is a
FrozenEncoder over the folder the tune wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jigsaw_kit.core.checkpoints import resolve_model
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embed import embed_texts


@dataclass
class FrozenEncoder:
    checkpoint: str  # a name under weights/ or a folder path
    max_length: int
    token_budget: int  # padded tokens per embedding batch
    backend: str = "torch-fp32"  # embed_backends.py
    fitted_at: str | None = None  # the folder `checkpoint` resolved to at fit

    def path(self) -> Path:
        """The checkpoint folder: the name resolved now, else the fit-time folder if it still exists."""
        try:
            return resolve_model(self.checkpoint)
        except KitError:
            if self.fitted_at is not None and Path(self.fitted_at).is_dir():
                return Path(self.fitted_at)
            raise

    def pinned(self) -> FrozenEncoder:
        """This encoder with fitted_at set to where its checkpoint resolves now (at fit)."""
        return dataclasses.replace(self, fitted_at=str(self.path().resolve()))

    def at(self, folder: Path) -> FrozenEncoder:
        """The same embedding settings over another checkpoint folder (a tuned copy of this one)."""
        return dataclasses.replace(self, checkpoint=str(folder), fitted_at=str(Path(folder).resolve()))

    def embed(self, texts: Sequence[str], path: Path | None = None) -> np.ndarray:
        """(len(texts), hidden) unit vectors; path: the folder already resolved by the caller."""
        folder = self.path() if path is None else path
        return embed_texts(folder, list(texts), self.max_length, self.token_budget, backend=self.backend)

    def rule_vectors(self, rules: Sequence[str], path: Path | None = None) -> dict[str, np.ndarray]:
        """{rule: its text's vector} over the distinct rules, embedded in sorted order."""
        names = sorted(set(rules))
        return dict(zip(names, self.embed(names, path)))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
