"""A disk cache of tuned encoders, keyed by everything that decides their weights.

`cv --scheme lb-proxy --folds 5` of cpu-contrastive tunes 15 encoders (~45 s each on 2 cores); a re-run of
the same CV tunes the same 15 again. Here each finished tune is kept under a key of: the base checkpoint's
content (embed_cache.checkpoint_fingerprint), the tune's training examples, its options, seed and
max_length, the loss constants, the libraries that train it and the device. A hit is the same weights, so
its embeddings hit the embedding cache (keyed by the tuned checkpoint's content) as well.

Layout, inside the embedding cache's root (same JIGSAW_KIT_CACHE_DIR / JIGSAW_KIT_EMBED_CACHE switches; `jigsaw-kit
cache` reports and clears it): tuned/<key[:32]>/{encoder/, tune.json}. An entry is built in a temp folder
and renamed into place, so a crash never leaves half an entry under its key. tune.json records the encoder's
fingerprint; an entry whose files no longer match it (or that cannot be read) is deleted with a warning and
tuned again, never trusted. Files are hard-linked where the file system allows (a tuned MiniLM is ~90 MB),
else copied. The JIGSAW_KIT_TUNE_KEEP (default 24) most recently used entries are kept.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embed_cache import TUNED, TUNED_ENTRY, TUNED_TEMP, cache_root, checkpoint_fingerprint

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the tune's code changes what a key's weights are
META = "tune.json"
ENCODER = "encoder"
_LIBRARIES = ("torch", "transformers", "sentence-transformers", "accelerate", "datasets")
_STALE_S = 6 * 3600  # a temp folder this old is a crashed writer's


def _keep() -> int:
    try:
        return max(1, int(os.environ.get("JIGSAW_KIT_TUNE_KEEP", "24")))  # a 5-fold lb-proxy CV makes 15
    except ValueError:
        return 24


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _device() -> str:
    """Where a tune runs changes its floats: the GPU's name (fp16 or bf16 follows from it), else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.machine()}"


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
        return dst
    except OSError:  # another file system, or links not allowed: a plain copy
        return shutil.copy2(src, dst)


def _copy_folder(src: Path, dst: Path) -> None:
    """dst (which must not exist) as a copy of src, written beside it and renamed into place."""
    partial = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        shutil.copytree(src, partial, copy_function=_link_or_copy)
        shutil.rmtree(dst, ignore_errors=True)
        partial.rename(dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


class TuneCache:
    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / TUNED

    @classmethod
    def here(cls) -> TuneCache | None:
        """The cache under the embedding cache's root, or None when that cache is off."""
        root = cache_root()
        return None if root is None else cls(root)

    def key(self, base: Path, examples: dict[str, list], parts: dict[str, Any]) -> str:
        """sha256 (hex) of what decides a tune's weights (see the module docstring)."""
        blob = json.dumps(examples, sort_keys=True, ensure_ascii=False).encode("utf-8")
        what = {
            "format": FORMAT,
            "base": checkpoint_fingerprint(base),
            "examples": hashlib.sha256(blob).hexdigest(),
            "tune": parts,
            "libraries": {p: _version(p) for p in _LIBRARIES},
            "device": _device(),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode("utf-8")).hexdigest()

    def entry(self, key: str) -> Path:
        return self.folder / key[:32]

    def _damaged(self, entry: Path, key: str) -> str | None:
        """Why the entry cannot serve this key (None: it can)."""
        try:
            meta = json.loads((entry / META).read_text(encoding="utf-8"))
            if meta.get("key") != key:
                return "it was made for another key"
            if checkpoint_fingerprint(entry / ENCODER) != meta.get("fingerprint"):
                return "its files changed since it was written"
        except (OSError, ValueError, AttributeError, KitError) as e:
            return f"{type(e).__name__}: {str(e)[:100]}"
        return None

    def fetch(self, key: str, out_dir: Path) -> bool:
        """Put the cached tune of `key` at out_dir; False on a miss (a damaged entry is deleted: a miss)."""
        entry = self.entry(key)
        if not entry.is_dir():
            return False
        why = self._damaged(entry, key)
        if why is not None:
            log.warning("tune cache: entry %s is damaged (%s); deleting it and tuning again", entry, why)
            shutil.rmtree(entry, ignore_errors=True)
            return False
        try:
            _copy_folder(entry / ENCODER, Path(out_dir))
            os.utime(entry)  # last use, for prune()
        except OSError as e:
            log.warning("tune cache: could not copy %s to %s (%s); tuning instead", entry, out_dir, e)
            return False
        log.info("tune cache: hit %s (the tune is skipped)", entry)
        return True

    def store(self, key: str, encoder: Path) -> Path | None:
        """Keep a finished tune under key; the entry's path, or None if the disk refused (logged, not raised)."""
        entry = self.entry(key)
        tmp = self.folder / f".{entry.name}.{uuid.uuid4().hex}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            shutil.copytree(encoder, tmp / ENCODER, copy_function=_link_or_copy)
            meta = {"key": key, "fingerprint": checkpoint_fingerprint(encoder), "created": time.time()}
            (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)  # a damaged entry fetch() could not delete
            os.replace(tmp, entry)  # atomic: readers see a whole entry or none
        except (OSError, KitError) as e:
            if not entry.is_dir():  # else another process stored the same tune meanwhile: as good as ours
                log.warning("tune cache: could not keep the tune in %s (%s); continuing without", self.folder, e)
                return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("tune cache: kept %s", entry)
        self.prune(keep=entry)
        return entry

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used entries beyond JIGSAW_KIT_TUNE_KEEP, and stale temp folders."""
        entries, now = [], time.time()
        for f in sorted(self.folder.iterdir()) if self.folder.is_dir() else []:
            try:
                mtime = f.stat().st_mtime
            except FileNotFoundError:
                continue
            if TUNED_TEMP.fullmatch(f.name) and now - mtime > _STALE_S:
                shutil.rmtree(f, ignore_errors=True)
            elif TUNED_ENTRY.fullmatch(f.name) and f.is_dir() and f != keep:
                entries.append((mtime, f))
        doomed = [f for _, f in sorted(entries, reverse=True)[_keep() - (keep is not None) :]]
        for f in doomed:
            shutil.rmtree(f, ignore_errors=True)
        if doomed:
            log.info("tune cache %s: removed the %d least recently used", self.folder, len(doomed))
        return doomed
