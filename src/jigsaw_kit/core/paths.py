"""File-system helpers: output locations checked before the work (a run must not train for hours and then
fail to write; the CLI and the notebook check --output, --run-dir, --out and --output-dir), and file hashes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from jigsaw_kit.core.errors import KitError


def check_writable(path: Path, what: str, file: bool | None = None) -> None:
    """KitError with the fix unless `path` can be written: a file (file=True), a folder (file=False), or when
    file is None, a file when it has a suffix, else a folder.

    The folder is created and a probe file written and removed: asking os.access is not enough, since
    root is "allowed" to write under /proc or a read-only mount and fails only when it tries. A file's own
    name is never created as a folder: `--output mysub` is the file mysub, not a folder the final write
    cannot replace.
    """
    path = Path(path)
    is_file = bool(path.suffix) and not path.is_dir() if file is None else file
    d = path.parent if is_file else path
    if is_file and path.is_dir():
        raise KitError(f"{what} {path} is a folder; give a file name, e.g. {path / 'submission.csv'}.")
    if what == "--output" and file is None and path.is_dir():
        raise KitError(f"--output {path} is a folder; give a file name, e.g. {path / 'submission.csv'}.")
    probe = d.resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise KitError(f"{what} {path}: {probe} is a file, not a folder. Choose another location.")
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".jigsaw-kit-probe-", dir=d)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise KitError(
            f"{what} {path}: cannot write in {d} ({e.strerror or e}). Choose a writable location "
            "(on Kaggle, under /kaggle/working)."
        ) from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (checkpoints run to gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
