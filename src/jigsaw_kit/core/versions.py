"""Library versions recorded next to every run and CV result, so a score can be traced to what made it."""

from __future__ import annotations

import platform

from jigsaw_kit import __version__


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {
        "jigsaw_kit": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
