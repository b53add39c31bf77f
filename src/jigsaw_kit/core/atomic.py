"""Atomic writes: every output goes to a unique temp file beside its destination, then is renamed.

A crash never leaves a half-written file under a final name that a later stage would read, and
DDP ranks writing the same file never share a temp name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_path(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call write(tmp_path), then rename tmp over `path`; the temp file never outlives a failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; an output should get the permissions open() gives
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def write_json(path: Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, default=_json_default)
    return atomic_path(path, lambda t: t.write_text(text, encoding="utf-8"))


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False)

    return atomic_path(path, write)
