"""Build the two Kaggle datasets the notebook attaches: kit + dependency wheels, and a checkpoint.

jigsaw-kit bundle --model weights/all-MiniLM-L6-v2 --out dist/kaggle                 # pip-downloads wheels
jigsaw-kit bundle --model weights/all-MiniLM-L6-v2 --out dist/kaggle --wheel-dir ~/wheels --no-download
kaggle datasets create -p dist/kaggle/jigsaw-kit-wheels --dir-mode zip
kaggle datasets create -p dist/kaggle/jigsaw-kit-model-all-minilm-l6-v2 --dir-mode zip
kaggle kernels push -p kernel
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jigsaw_kit import __version__
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.wheels import (
    BUNDLE_PYTHONS,
    IMAGE_ASSUMED,
    KAGGLE_PLATFORM,
    KAGGLE_PLATFORMS,
    KAGGLE_PYTHON,
    KAGGLE_WHEELS,
    MODEL_DATASET_PREFIX,
    MODEL_MARKER,
    USERNAME_PLACEHOLDER,
    WHEELS_DATASET,
    canonical_name,
)


@dataclass
class BundleReport:
    wheels_dir: Path
    model_dir: Path
    wheels: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @staticmethod
    def _size(d: Path) -> int:
        return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())

    def lines(self) -> list[str]:
        out = [f"{self.wheels_dir} ({_mb(self._size(self.wheels_dir))}):"]
        for w in sorted(self.wheels, key=lambda w: -w["bytes"]):
            how = f"requirements.txt: {w['name']}{w['need']}" if w["direct"] else "fallback"
            more = f" (+{len(w['files']) - 1} for other Pythons)" if len(w["files"]) > 1 else ""
            out.append(f"  {_mb(w['bytes']):>9}  {w['file']}{more}  [{how}]")
        out += [f"  warning: {w}" for w in self.warnings]
        if self.skipped:
            out.append(f"  not bundled (the image must provide them): {', '.join(self.skipped)}")
        out.append(f"{self.model_dir} ({_mb(self._size(self.model_dir))})")
        total = self._size(self.wheels_dir) + self._size(self.model_dir)
        out.append(f"total {_mb(total)}")
        return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def slug(name: str) -> str:
    """A Kaggle dataset slug: lowercase letters, digits and hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", name.lower())).strip("-")


def source_root() -> Path | None:
    """The kit's source tree (pyproject.toml naming jigsaw-kit), or None when running from a wheel."""
    root = Path(__file__).resolve().parents[3]  # src/jigsaw_kit/kaggle/bundling.py
    pp = root / "pyproject.toml"
    if pp.is_file() and re.search(r'(?m)^name\s*=\s*"jigsaw-kit"', pp.read_text(encoding="utf-8")):
        return root
    return None


def build_kit_wheel(dest: Path, root: Path | None = None) -> Path:
    """Build the kit's wheel offline from a clean copy of the sources (no build/ or egg-info left in the repo)."""
    root = root or source_root()
    if root is None:
        raise KitError("no jigsaw-kit source tree found next to this installation; pass --wheel-dir with its wheel.")
    try:
        import setuptools  # noqa: F401  (the build backend, used without build isolation so no download)
    except ImportError:
        raise KitError(
            "building the kit's wheel needs setuptools in this environment: pip install setuptools"
        ) from None
    with tempfile.TemporaryDirectory(prefix="jigsaw-kit-src-") as tmp:
        src = Path(tmp) / "jigsaw-kit"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(root / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        r = subprocess.run([*cmd, "-q", "-w", str(dest), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise KitError(f"building the kit's wheel failed:\n{(r.stderr or r.stdout)[-2000:]}")
    wheels = sorted(dest.glob(f"jigsaw_kit-{__version__}-*.whl"))
    if not wheels:
        raise KitError(f"pip wheel reported success but no jigsaw_kit-{__version__} wheel is in {dest}.")
    return wheels[-1]


def _wheel_key(filename: str) -> tuple[str, str] | None:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return canonical_name(name), str(version)


def _wheels_of(d: Path | None, name: str, version: str) -> list[Path]:
    """Every wheel file of name==version in d (one per Python where the wheel is version-specific)."""
    if d is None or not d.is_dir():
        return []
    return [p for p in sorted(d.glob("*.whl")) if _wheel_key(p.name) == (canonical_name(name), version)]


def _find_wheel(d: Path | None, name: str, version: str) -> Path | None:
    found = _wheels_of(d, name, version)
    return found[0] if found else None


def installs_on(filename: str, python: str) -> bool:
    """Whether pip on CPython `python` (e.g. "3.12"), Linux x86_64 with glibc 2.35, would take this wheel."""
    from packaging.utils import parse_wheel_filename

    want = int(python.replace(".", "")[1:])  # "3.12" -> 12
    platforms = {"any", *KAGGLE_PLATFORMS}
    for tag in parse_wheel_filename(filename)[3]:
        if tag.platform not in platforms:
            continue
        m = re.fullmatch(r"(cp|py)3(\d*)", tag.interpreter)
        if m is None:
            continue
        minor = int(m.group(2)) if m.group(2) else None
        if tag.abi == "abi3" or (m.group(1) == "py" and tag.abi == "none"):
            if minor is None or minor <= want:  # abi3 / py3x: this Python and every later one
                return True
        elif minor == want:
            return True
    return False


def _pythons_covered(files: Sequence[Path]) -> list[str]:
    return [py for py in BUNDLE_PYTHONS if any(installs_on(f.name, py) for f in files)]


def tested_version(name: str) -> str:
    """The version installed here, i.e. the one the test suite ran against (requirements.lock)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        raise KitError(
            f"{name} is not installed here, so the bundle cannot tell which version was tested. "
            "Install the pinned environment (make setup) or pass --kit-only."
        ) from None


def pip_download_command(specs: Sequence[str], dest: Path, python: str = KAGGLE_PYTHON) -> list[str]:
    """Wheels for one of Kaggle's interpreters and its platform, whatever this machine is; --no-deps: the list is
    explicit."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", python, "--implementation", "cp", "--abi", "cp" + python.replace(".", ""),
        *(f"--platform={p}" for p in KAGGLE_PLATFORMS), "-d", str(dest), *specs,
    ]  # fmt: skip


def kit_requirements(kit_wheel: Path) -> dict[str, str]:
    """{canonical name: specifier} of the kit's own requirements, read from the wheel being shipped (its
    pyproject ranges): what "too old" means when the notebook installs."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(kit_wheel) as z:
        meta = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        text = z.read(meta).decode("utf-8") if meta else ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None:
                out[canonical_name(req.name)] = str(req.specifier)
    return out


def _checkpoint_license(model: Path) -> str:
    """The license named in a Hugging Face model card's front matter, else 'other'."""
    readme = model / "README.md"
    if readme.is_file():
        m = re.search(r"(?m)^license:\s*([\w.\-]+)\s*$", readme.read_text(encoding="utf-8", errors="replace")[:4000])
        if m:
            return m.group(1)
    return "other"


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _kit_wheel(dest: Path, wheel_dir: Path | None) -> Path:
    # The kit's wheel is always built from the sources when they are here: a cached wheel of the same
    # version could silently carry old code into a submission.
    if source_root() is not None:
        return build_kit_wheel(dest)
    found = _find_wheel(Path(wheel_dir) if wheel_dir else None, "jigsaw-kit", __version__)
    if found is None:
        raise KitError(f"no kit sources here and no jigsaw_kit-{__version__} wheel in --wheel-dir.")
    return Path(shutil.copy2(found, dest))


def _download(todo: list[str], dest: Path, python: str, log: Callable[[str], None]) -> str:
    """pip download for one Python; '' on success, else pip's last words."""
    log(f"bundle: pip download {len(todo)} wheel(s) for Python {python}, {KAGGLE_PLATFORM} or older")
    r = subprocess.run(pip_download_command(todo, dest, python), capture_output=True, text=True)
    return "" if r.returncode == 0 else (r.stderr or r.stdout)[-1500:]


def download_wheels(dest: Path, log: Callable[[str], None] = print) -> list[str]:
    """KAGGLE_WHEELS at their tested versions for every Python of BUNDLE_PYTHONS into dest (a cache for
    `bundle --wheel-dir` and the rehearsal, made by `make setup`); returns the warnings."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{w.name}=={tested_version(w.name)}" for w in KAGGLE_WHEELS]
    return [spec for python in BUNDLE_PYTHONS for spec in _download_for(specs, dest, python, log)]


def _download_for(specs: list[str], dest: Path, python: str, log: Callable[[str], None]) -> list[str]:
    """pip download specs for one Python; the specs that have no wheel for it. For KAGGLE_PYTHON a failure is a
    KitError; for the others each spec is retried alone, so one package without a wheel costs no other."""
    failed = _download(specs, dest, python, log)
    if not failed:
        return []
    if python == KAGGLE_PYTHON:
        raise KitError(
            f"pip download for Python {python} failed (network? platform wheel missing?):\n{failed}\n"
            "Fix: fetch the wheels elsewhere into a folder and pass --wheel-dir DIR --no-download."
        )
    return [spec for spec in specs if _download([spec], dest, python, lambda s: None)]


def _collect_wheels(
    dest: Path, wheel_dir: Path | None, download: bool, kit_only: bool, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The kit's wheel and KAGGLE_WHEELS at their tested versions into dest, for every Python of BUNDLE_PYTHONS;
    (entries, names not bundled, warnings). A wheel missing for KAGGLE_PYTHON is an error; for the others a warning."""
    kit = _kit_wheel(dest, wheel_dir)
    ranges = kit_requirements(kit)
    entries: list[dict[str, Any]] = [
        {"name": "jigsaw-kit", "version": __version__, "file": kit.name, "files": [kit.name], "direct": True,
         "need": f"=={__version__}", "reason": "the kit"},
    ]  # fmt: skip
    entries[0]["bytes"] = kit.stat().st_size
    log(f"bundle: kit wheel {kit.name}")
    if kit_only:
        return entries, [w.name for w in KAGGLE_WHEELS], []
    wanted = [(w, tested_version(w.name)) for w in KAGGLE_WHEELS]
    src = Path(wheel_dir) if wheel_dir else None
    for w, v in wanted:
        for f in _wheels_of(src, w.name, v):
            shutil.copy2(f, dest / f.name)
    for python in BUNDLE_PYTHONS:
        todo = [f"{w.name}=={v}" for w, v in wanted if python not in _pythons_covered(_wheels_of(dest, w.name, v))]
        if todo and download:
            _download_for(todo, dest, python, log)  # what is still missing is reported below, per Python
    missing, warnings = [], []
    for w, v in wanted:
        files = _wheels_of(dest, w.name, v)
        covered = _pythons_covered(files)
        if KAGGLE_PYTHON not in covered:
            missing.append(f"{w.name}=={v}")
            continue
        warnings += [f"no {w.name}=={v} wheel for Python {py}" for py in BUNDLE_PYTHONS if py not in covered]
        from packaging.specifiers import SpecifierSet

        need = ranges.get(canonical_name(w.name), "") if w.direct else ""
        if w.direct and need and not SpecifierSet(need).contains(v):
            raise KitError(f"{w.name}=={v} (tested here) is outside the kit's own range {need}: fix pyproject.toml.")
        entries.append(
            {"name": w.name, "version": v, "file": next(f.name for f in files if installs_on(f.name, KAGGLE_PYTHON)),
             "files": [f.name for f in files], "pythons": covered, "direct": w.direct, "need": need,
             "reason": w.reason}
        )  # fmt: skip
    if missing:
        cmd = pip_download_command(missing, Path("WHEEL_DIR"))
        raise KitError(
            f"no Python {KAGGLE_PYTHON} wheel for {', '.join(missing)} in --wheel-dir"
            f"{'' if download else ' (and --no-download)'}. Fetch them with: python {' '.join(cmd[1:])}"
        )
    for e in entries[1:]:
        e["bytes"] = sum((dest / f).stat().st_size for f in e["files"])
    return entries, [], warnings


def _write_wheels_metadata(
    dest: Path, entries: list[dict[str, Any]], skipped: list[str], username: str, warnings: list[str]
) -> None:
    direct = [f"{e['name']}{e['need']}" for e in entries[1:] if e["direct"]]
    (dest / "requirements.txt").write_text(
        "# The notebook (kaggle/safety_net.py install) runs, with torch held at the image's version:\n"
        "#   pip install --no-index --find-links <this folder> --no-deps jigsaw_kit-*.whl\n"
        "#   pip install --no-index --find-links <this folder> -r requirements.txt\n"
        "# Ranges, not pins: the kit's own floors (pyproject.toml). pip installs a wheel from here only where the\n"
        "# image lacks the package or has it older than the range (or than an installed package needs); the other\n"
        "# wheels here are those needs (see jigsaw_kit/kaggle/wheels.py KAGGLE_WHEELS).\n"
        + "\n".join(direct)
        + "\n",
        encoding="utf-8",
    )
    _write_json(
        dest / "BUNDLE.json",
        {
            "kit_version": __version__,
            "python": KAGGLE_PYTHON,
            "pythons": list(BUNDLE_PYTHONS),
            "platform": KAGGLE_PLATFORM,
            "wheels": entries,
            "not_bundled": skipped,
            "warnings": warnings,
            "image_assumed": IMAGE_ASSUMED,
        },
    )
    _write_json(
        dest / "dataset-metadata.json",
        {
            "title": "jigsaw-kit wheels",
            "id": f"{username}/{WHEELS_DATASET}",
            "licenses": [{"name": "other"}],
            "description": "jigsaw-kit and the dependency wheels the Kaggle image may lack, for offline "
            "`pip install --no-index` (CPython 3.12; 3.11 and 3.13 where a wheel is version-specific). Each wheel "
            "keeps its own license. Contents: " + ", ".join(f for e in entries for f in e["files"]),
        },
    )


def bundle(
    model: Path,
    out: Path,
    wheel_dir: Path | None = None,
    download: bool = True,
    kit_only: bool = False,
    username: str = USERNAME_PLACEHOLDER,
    log: Callable[[str], None] = print,
) -> BundleReport:
    """Write out/jigsaw-kit-wheels/ and out/jigsaw-kit-model-<name>/, each ready for `kaggle datasets create`."""
    from jigsaw_kit.core.checkpoints import check_checkpoint

    model = Path(model)
    if not model.is_dir():
        raise KitError(f"--model {model}: no such folder. Run `jigsaw-kit vendor` or point at a checkpoint folder.")
    check_checkpoint(model)
    if wheel_dir is not None and not Path(wheel_dir).is_dir():
        raise KitError(f"--wheel-dir {wheel_dir}: no such folder.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wheels_final = out / WHEELS_DATASET
    model_final = out / (MODEL_DATASET_PREFIX + slug(model.name))
    # Build into .partial folders and rename at the end: a half-built bundle never looks uploadable.
    wheels_tmp = wheels_final.with_name(wheels_final.name + ".partial")
    shutil.rmtree(wheels_tmp, ignore_errors=True)
    wheels_tmp.mkdir()
    try:
        entries, skipped, warnings = _collect_wheels(wheels_tmp, wheel_dir, download, kit_only, log)
    except BaseException:
        shutil.rmtree(wheels_tmp, ignore_errors=True)
        raise
    _write_wheels_metadata(wheels_tmp, entries, skipped, username, warnings)
    shutil.rmtree(wheels_final, ignore_errors=True)
    wheels_tmp.rename(wheels_final)

    model_tmp = model_final.with_name(model_final.name + ".partial")
    shutil.rmtree(model_tmp, ignore_errors=True)
    shutil.copytree(model, model_tmp, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    _write_json(model_tmp / MODEL_MARKER, {"name": model.name, "kit_version": __version__})
    _write_json(
        model_tmp / "dataset-metadata.json",
        {
            "title": f"jigsaw-kit model {model.name}"[:50],
            "id": f"{username}/{model_final.name}",
            "licenses": [{"name": _checkpoint_license(model)}],
            "description": f"The {model.name} checkpoint folder as jigsaw-kit vendors it, for offline fine-tuning.",
        },
    )
    shutil.rmtree(model_final, ignore_errors=True)
    model_tmp.rename(model_final)
    return BundleReport(wheels_final, model_final, entries, skipped, warnings)

