"""A disk cache of sentence embeddings, shared by every process (run, cv, bench, notebooks).

The frozen encoder dominates the hybrid method's cost and the same texts are embedded again and again
across commands, so their vectors are kept on disk, keyed by the checkpoint's content (a copied checkpoint
hits, a retrained one misses), max_length and pooling.

Layout: <root>/<fingerprint[:32]>-L<max_length>-<pooling>/<uuid4 hex>.npz, each chunk holding `keys` (hex
sha256 of each text) and `vectors` (float32, exact). Chunks are only ever added, each written to a temp file
and renamed: readers never see a partial one, concurrent writers never clash, duplicate keys are harmless.
A chunk that cannot be read or does not fit its namespace (vector width, dtype, key layout) is a miss, warned
once and deleted (it can always be recomputed); a run with a damaged cache gets what `--no-cache` gives.
<root>/tuned/ holds the tune cache (methods/embedding/tune_cache.py); its folder names are defined here, so that
`jigsaw-kit cache` reports and clears both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jigsaw_kit.core.checkpoints import WEIGHT_SUFFIXES
from jigsaw_kit.core.errors import KitError

log = logging.getLogger(__name__)

_CONFIG_FILES = frozenset(  # config.json plus every tokenizer file transformers may read
    "config.json tokenizer.json vocab.txt tokenizer.model spm.model vocab.json merges.txt tokenizer_config.json "
    "special_tokens_map.json".split()
)
_WEIGHT_SUFFIXES = (*WEIGHT_SUFFIXES, ".pt")  # .pt too: better hash a stray tensor file than miss one
_TRAINER_STATE = {"optimizer.pt", "scheduler.pt", "training_args.bin"}  # never change what the encoder outputs
_NAMESPACE = re.compile(r"[0-9a-f]{32}-L\d+-[A-Za-z0-9_]+")
_CHUNK = re.compile(r"[0-9a-f]{32}\.npz")
_TEMP = re.compile(r"\.[0-9a-f]{32}\.npz\.[^/]*\.tmp")
TUNED = "tuned"  # <root>/tuned/<key[:32]>/: one tuned encoder each (tune_cache.py)
TUNED_ENTRY = re.compile(r"[0-9a-f]{32}")
TUNED_TEMP = re.compile(r"\.[0-9a-f]{32}\.[0-9a-f]+\.tmp")
_OFF = ("0", "off", "false", "no")
_KEY_DTYPE = np.dtype("S64")  # hex sha256 of each text
_FINGERPRINTS: dict[tuple, str] = {}


def cache_root() -> Path | None:
    """The cache folder, or None when JIGSAW_KIT_EMBED_CACHE turns the cache off."""
    if os.environ.get("JIGSAW_KIT_EMBED_CACHE", "").strip().lower() in _OFF:
        return None
    if os.environ.get("JIGSAW_KIT_CACHE_DIR"):
        return Path(os.environ["JIGSAW_KIT_CACHE_DIR"]).expanduser()
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "jigsaw-kit" / "embeddings"


def _max_bytes() -> float:
    raw = os.environ.get("JIGSAW_KIT_CACHE_MAX_GB", "10")
    try:
        return float(raw) * 1e9
    except ValueError:
        log.warning("JIGSAW_KIT_CACHE_MAX_GB=%r is not a number; using 10", raw)
        return 10e9


def _fingerprint_files(path: Path) -> list[Path]:
    if not (path / "config.json").is_file():
        raise KitError(f"cannot fingerprint {path}: no config.json, so it is not a checkpoint folder")
    wanted = [f for f in path.iterdir() if f.name in _CONFIG_FILES or f.name.endswith(_WEIGHT_SUFFIXES)]
    return sorted(f for f in wanted if f.name not in _TRAINER_STATE and f.is_file())


def checkpoint_fingerprint(path: Path) -> str:
    """sha256 (hex) of a checkpoint folder's config, weights and tokenizer files: names and bytes, not location."""
    path = Path(path).resolve()
    files = _fingerprint_files(path)
    stats = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(path), stats)
    if key not in _FINGERPRINTS:  # a 440 MB checkpoint is hashed once per process, again only if a file changes
        h = hashlib.sha256()
        for f, (name, size, _) in zip(files, stats):
            h.update(f"{name}\0{size}\0".encode())  # the size delimits one file's bytes from the next name
            with open(f, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


def _text_key(text: str) -> bytes:
    # hex, not raw digest bytes: numpy's S dtype strips trailing NULs, which would corrupt a raw digest
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


def _ls(folder: Path, pattern: re.Pattern) -> list[Path]:
    """The entries of folder whose names the cache wrote (a namespace or a chunk); none if folder is gone."""
    try:
        return sorted(f for f in folder.iterdir() if pattern.fullmatch(f.name))
    except (FileNotFoundError, NotADirectoryError):
        return []


class EmbeddingCache:
    """The cached vectors of one (checkpoint content, max_length, pooling), loaded lazily once per instance."""

    def __init__(
        self, root: Path, fingerprint: str, max_length: int, pooling: str = "mean", width: int | None = None
    ) -> None:
        if not re.fullmatch(r"[0-9a-f]{32,}", fingerprint) or not re.fullmatch(r"[A-Za-z0-9_]+", pooling):
            raise ValueError(f"bad cache namespace: fingerprint {fingerprint!r}, pooling {pooling!r}")
        self.root = Path(root)
        self.folder = self.root / f"{fingerprint[:32]}-L{int(max_length)}-{pooling}"
        # the encoder's vector width (its hidden_size); None: the width most of the namespace's vectors have
        self.width = int(width) if width else None
        self._vectors: dict[bytes, np.ndarray] = {}
        self._seen: set[str] = set()
        self._loaded = False

    def _skip(self, f: Path, why: str) -> None:
        """A chunk that cannot serve is a miss: warned once (per instance), deleted when it is a file we wrote."""
        own = f.is_file() and not f.is_symlink()
        log.warning("embedding cache: skipping %s chunk %s (%s)", "and deleting" if own else "unusable", f, why)
        if own:
            try:
                f.unlink(missing_ok=True)
            except OSError:  # a read-only shared cache: skipping is enough
                pass

    def _refresh(self) -> None:
        """Load the chunks not loaded yet; skip (and delete) the ones that cannot be read or do not fit."""
        self._loaded = True
        loaded = []
        for f in _ls(self.folder, _CHUNK):
            if f.name in self._seen:
                continue
            self._seen.add(f.name)
            if not f.is_file():  # a folder (or a dangling link) where a chunk should be
                self._skip(f, "not a file")
                continue
            try:
                with np.load(f, allow_pickle=False) as z:
                    keys, vectors = z["keys"], z["vectors"]
                if keys.dtype != _KEY_DTYPE or keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
                    raise ValueError(f"keys {keys.shape} {keys.dtype} / vectors {vectors.shape}")
                if vectors.dtype != np.float32:  # stored exactly as the encoder gave them, odd floats included
                    raise ValueError(f"vectors {vectors.dtype}, not float32")
            except FileNotFoundError:
                continue  # pruned by another process meanwhile
            except Exception as e:  # any unreadable chunk is recomputable, never fatal
                self._skip(f, f"unreadable: {e}")
                continue
            loaded.append((f, keys, vectors))
        if self.width is None and loaded:  # no declared width: the one most of the namespace's vectors have
            counts: Counter[int] = Counter()
            for _, keys, vectors in loaded:
                counts[vectors.shape[1]] += len(keys)
            self.width = counts.most_common(1)[0][0]
        for f, keys, vectors in loaded:
            if vectors.shape[1] != self.width:
                self._skip(f, f"vectors {vectors.shape[1]} wide, the namespace's are {self.width}")
                continue
            self._vectors.update(zip(keys.tolist(), vectors))

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """{text: vector} for the texts found in the cache; the others are simply absent."""
        keys = {t: _text_key(t) for t in texts}
        fresh = not self._loaded
        if fresh:
            self._refresh()
        if not fresh and any(k not in self._vectors for k in keys.values()):
            self._refresh()  # another process may have added chunks since we last looked
        return {t: self._vectors[k] for t, k in keys.items() if k in self._vectors}

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Write one new chunk (atomically); returns its path, or None if the disk refused (logged, not raised)."""
        vectors = np.asarray(vectors)
        if vectors.dtype != np.float32:
            raise TypeError(f"embedding cache stores float32 exactly; got {vectors.dtype}")
        if len(texts) != len(vectors) or vectors.ndim != 2:
            raise ValueError(f"{len(texts)} texts but vectors of shape {vectors.shape}")
        if self.width is not None and vectors.shape[1] != self.width:  # never fatal: the run has its vectors
            log.warning("embedding cache: not caching vectors %d wide in %s (width %d)", vectors.shape[1], self.folder,
                        self.width)  # fmt: skip
            return None
        self.width = vectors.shape[1]
        if not len(texts):
            return None
        keys = [_text_key(t) for t in texts]
        name = f"{uuid.uuid4().hex}.npz"
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
            with os.fdopen(fd, "wb") as fh:  # a file object: np.savez would append .npz to a name
                np.savez(fh, keys=np.array(keys, dtype=_KEY_DTYPE), vectors=vectors)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; let other users of a shared cache read it
            os.replace(tmp, self.folder / name)
        except OSError as e:
            log.warning("embedding cache: could not write a chunk in %s (%s); continuing without it", self.folder, e)
            return None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        self._seen.add(name)
        self._vectors.update(zip(keys, vectors))
        prune(self.root, keep=self.folder / name)
        return self.folder / name


def prune(root: Path, max_bytes: float | None = None, keep: Path | None = None) -> int:
    """Delete the oldest chunks across namespaces until the cache fits its bound; returns bytes removed."""
    limit = _max_bytes() if max_bytes is None else max_bytes
    chunks = []
    for ns in _ls(Path(root), _NAMESPACE):
        for f in _ls(ns, _CHUNK):
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            if f.is_file():  # a folder in a chunk's place is not ours to delete (get() warns about it)
                chunks.append((st.st_mtime_ns, st.st_size, f))
    total = sum(size for _, size, _ in chunks)
    removed = count = 0
    for _, size, f in sorted(chunks):
        if total - removed <= limit:
            break
        if f == keep:  # the chunk just written is the one most worth keeping
            continue
        f.unlink(missing_ok=True)
        removed += size
        count += 1
    if count:
        mb, gb = removed / 1e6, limit / 1e9
        log.info("embedding cache %s: pruned %d oldest chunks (%.1f MB) to stay under %.2f GB", root, count, mb, gb)
    return removed


def _tree_bytes(folder: Path) -> int:
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size if f.is_file() else 0
        except OSError:
            continue
    return total


def cache_report(root: Path) -> dict:
    """{folder, namespaces: {name: {chunks, vectors, bytes}}, tuned: {encoders, bytes}, total_bytes} of a cache
    folder; `tuned` is the tune cache's share (tune_cache.py)."""
    namespaces = {}
    for ns in _ls(Path(root), _NAMESPACE):
        chunks = vectors = size = 0
        for f in _ls(ns, _CHUNK):
            try:
                size += f.stat().st_size
                with np.load(f, allow_pickle=False) as z:
                    vectors += len(z["keys"])
                chunks += 1
            except Exception:  # a report never fails; the next get() deletes bad chunks
                continue
        namespaces[ns.name] = {"chunks": chunks, "vectors": vectors, "bytes": size}
    entries = _ls(Path(root) / TUNED, TUNED_ENTRY)
    tuned = {"encoders": len(entries), "bytes": sum(_tree_bytes(e) for e in entries)}
    total = sum(n["bytes"] for n in namespaces.values()) + tuned["bytes"]
    return {"folder": str(root), "namespaces": namespaces, "tuned": tuned, "total_bytes": total}


def _tuned_entries(folder: Path) -> list[Path]:
    """The tune cache's entries and temp folders in root/tuned; KitError (nothing deleted) on anything else."""
    if folder.is_symlink() or not folder.is_dir():
        raise KitError(f"{folder} is not the tune cache's folder; nothing deleted")
    found = []
    for f in sorted(folder.iterdir()):
        if not (f.is_dir() and not f.is_symlink() and (TUNED_ENTRY.fullmatch(f.name) or TUNED_TEMP.fullmatch(f.name))):
            raise KitError(f"{folder} holds {f.name!r}, which the tune cache did not write; nothing deleted")
        found.append(f)
    return found


def clear_cache(root: Path) -> int:
    """Delete every namespace folder and chunk in root, and the tune cache's entries; returns bytes removed.

    Refuses (KitError, nothing deleted) when root holds anything the cache did not write, so a
    mistyped JIGSAW_KIT_CACHE_DIR can never wipe someone's files.
    """
    root = Path(root)
    if not root.exists():
        return 0
    if not root.is_dir():
        raise KitError(f"{root} is not a folder, so it is not an embedding cache; nothing deleted")
    files, tuned = [], []
    for ns in sorted(root.iterdir()):
        if ns.name == TUNED:
            tuned = _tuned_entries(ns)
            continue
        if not (ns.is_dir() and not ns.is_symlink() and _NAMESPACE.fullmatch(ns.name)):
            raise KitError(f"{root} does not look like an embedding cache ({ns.name!r} is not ours); nothing deleted")
        for f in sorted(ns.iterdir()):
            if not (f.is_file() and not f.is_symlink() and (_CHUNK.fullmatch(f.name) or _TEMP.fullmatch(f.name))):
                raise KitError(f"{ns} holds {f.name!r}, which the embedding cache did not write; nothing deleted")
            files.append(f)
    removed = 0
    for f in files:
        try:
            removed += f.stat().st_size
            f.unlink()
        except FileNotFoundError:
            continue
    for entry in tuned:
        removed += _tree_bytes(entry)
        shutil.rmtree(entry, ignore_errors=True)
    for ns in [*_ls(root, _NAMESPACE), root / TUNED]:
        try:
            ns.rmdir()
        except OSError:
            pass  # a writer added a chunk meanwhile (or there is no tune cache): leave it
    return removed
