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
from typing import TYPE_CHECKING, Any

from jigsaw_kit import __version__
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.wheels import (
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

if TYPE_CHECKING:  # annotations only: importing these at runtime would pull pandas into `jigsaw-kit --help`
    pass


@dataclass
class BundleReport:
    wheels_dir: Path
    model_dir: Path
    wheels: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @staticmethod
    def _size(d: Path) -> int:
        return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())

    def lines(self) -> list[str]:
        out = [f"{self.wheels_dir} ({_mb(self._size(self.wheels_dir))}):"]
        for w in sorted(self.wheels, key=lambda w: -w["bytes"]):
            how = "pinned" if w["pinned"] else "fallback"
            out.append(f"  {_mb(w['bytes']):>9}  {w['file']}  [{how}]")
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


def _find_wheel(d: Path | None, name: str, version: str) -> Path | None:
    if d is None or not d.is_dir():
        return None
    for p in sorted(d.glob("*.whl")):
        if _wheel_key(p.name) == (canonical_name(name), version):
            return p
    return None


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


def pip_download_command(specs: Sequence[str], dest: Path) -> list[str]:
    """Wheels for Kaggle's interpreter/platform, whatever this machine is; --no-deps: the list is explicit."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", KAGGLE_PYTHON, "--implementation", "cp", "--abi", "cp" + KAGGLE_PYTHON.replace(".", ""),
        *(f"--platform={p}" for p in KAGGLE_PLATFORMS), "-d", str(dest), *specs,
    ]  # fmt: skip


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


def _collect_wheels(
    dest: Path, wheel_dir: Path | None, download: bool, kit_only: bool, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The kit's wheel and KAGGLE_WHEELS at their tested versions into dest; (entries, names not bundled)."""
    entries: list[dict[str, Any]] = []
    # The kit's wheel is always built from the sources when they are here: a cached wheel of the same
    # version could silently carry old code into a submission.
    if source_root() is not None:
        kit = build_kit_wheel(dest)
    else:
        found = _find_wheel(Path(wheel_dir) if wheel_dir else None, "jigsaw-kit", __version__)
        if found is None:
            raise KitError(f"no kit sources here and no jigsaw_kit-{__version__} wheel in --wheel-dir.")
        kit = Path(shutil.copy2(found, dest))
    entries.append(
        {"name": "jigsaw-kit", "version": __version__, "file": kit.name, "pinned": True, "reason": "the kit"}
    )
    log(f"bundle: kit wheel {kit.name}")

    skipped: list[str] = []
    if kit_only:
        skipped = [w.name for w in KAGGLE_WHEELS]
    else:
        wanted = [(w, tested_version(w.name)) for w in KAGGLE_WHEELS]
        todo = []
        for w, v in wanted:
            found = _find_wheel(Path(wheel_dir) if wheel_dir else None, w.name, v)
            if found is not None:
                shutil.copy2(found, dest / found.name)
            else:
                todo.append(f"{w.name}=={v}")
        if todo and download:
            log(f"bundle: pip download {len(todo)} wheel(s) for Python {KAGGLE_PYTHON}, {KAGGLE_PLATFORM} or older")
            r = subprocess.run(pip_download_command(todo, dest), capture_output=True, text=True)
            if r.returncode != 0:
                raise KitError(
                    f"pip download failed (network? platform wheel missing?):\n{(r.stderr or r.stdout)[-1500:]}\n"
                    "Fix: fetch the wheels elsewhere into a folder and pass --wheel-dir DIR --no-download."
                )
        missing = []
        for w, v in wanted:
            found = _find_wheel(dest, w.name, v)
            if found is None:
                missing.append(f"{w.name}=={v}")
                continue
            entries.append({"name": w.name, "version": v, "file": found.name, "pinned": w.pinned, "reason": w.reason})
        if missing:
            raise KitError(
                f"no wheel for {', '.join(missing)} in --wheel-dir{'' if download else ' (and --no-download)'}. "
                f"Fetch them with: python {' '.join(pip_download_command(missing, Path('WHEEL_DIR'))[1:])}"
            )
    for e in entries:
        e["bytes"] = (dest / e["file"]).stat().st_size
    return entries, skipped


def _write_wheels_metadata(dest: Path, entries: list[dict[str, Any]], skipped: list[str], username: str) -> None:
    pins = [f"{e['name']}=={e['version']}" for e in entries if e["pinned"]]
    (dest / "requirements.txt").write_text(
        "# The notebook runs: pip install --no-index --find-links <this folder> -r requirements.txt\n"
        "# Pinned: the versions the kit was tested with. The other wheels here are fallbacks pip takes\n"
        "# only when the Kaggle image's copy is missing or too old (see jigsaw_kit/kaggle/wheels.py KAGGLE_WHEELS).\n"
        + "\n".join(pins)
        + "\n",
        encoding="utf-8",
    )
    _write_json(
        dest / "BUNDLE.json",
        {
            "kit_version": __version__,
            "python": KAGGLE_PYTHON,
            "platform": KAGGLE_PLATFORM,
            "wheels": entries,
            "not_bundled": skipped,
            "image_assumed": IMAGE_ASSUMED,
        },
    )
    _write_json(
        dest / "dataset-metadata.json",
        {
            "title": "jigsaw-kit wheels",
            "id": f"{username}/{WHEELS_DATASET}",
            "licenses": [{"name": "other"}],
            "description": "jigsaw-kit and the dependency wheels the Kaggle image lacks, for offline "
            "`pip install --no-index`. Each wheel keeps its own license. Contents: "
            + ", ".join(e["file"] for e in entries),
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
        entries, skipped = _collect_wheels(wheels_tmp, wheel_dir, download, kit_only, log)
    except BaseException:
        shutil.rmtree(wheels_tmp, ignore_errors=True)
        raise
    _write_wheels_metadata(wheels_tmp, entries, skipped, username)
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
    return BundleReport(wheels_final, model_final, entries, skipped)
