"""What the Kaggle image holds, and which wheels the bundle carries: ONE place.

Facts, read from Kaggle's own image definition (github.com/Kaggle/docker-python, commit 78aaa43, 2026-08-12;
re-read it before relying on one, the image moves), with the commit that says each:
- Python 3.12 (4ae73d1, 2025-12-12, "Upgrade to Python 3.12"): packages live in /usr/local/lib/python3.12/dist-packages,
  so a cp311 wheel does not install there; py3-none-any and abi3 wheels do.
- The base is Google Colab's runtime (Dockerfile.tmpl FROM .../colab-images/public/runtime:...20260514...); its
  torch (a CUDA build), tensorflow and jax are frozen, then kaggle_requirements.txt is installed with uv. That file
  asks for transformers>=5.0.0, datasets>=2.14.6 and kagglehub>=0.4.2; it does not name sentence-transformers, peft,
  accelerate or pyarrow, whose presence and versions come from the Colab base and are unknown here.
- The image's torch no longer runs on a P100 (82c5c43, 2026-03-19, "...no longer works on P100s / cuda sm_60").

So the bundle assumes "present, version unknown" for everything but torch: the notebook installs only what the image
lacks or has older than the kit's own floors (its pyproject ranges), from wheels for CPython 3.12 and, where a wheel
is version-specific, 3.11 and 3.13 too. A test (tests/kaggle/test_kaggle_rehearsal.py) walks the installed metadata
through `unaccounted_requirements` and fails when a new dependency is neither bundled nor assumed in the image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

KAGGLE_PYTHON = "3.12"  # the image's interpreter (docker-python 4ae73d1)
# Version-specific wheels are bundled for these too, so the next image change (or an older image) still installs.
BUNDLE_PYTHONS = (KAGGLE_PYTHON, "3.11", "3.13")
# The Colab base is Ubuntu 22.04 (glibc 2.35). pip download does not expand a manylinux tag to the older ones a
# glibc-2.35 system also runs, so every one is listed (plus the legacy aliases).
KAGGLE_PLATFORM = "manylinux_2_35_x86_64"
KAGGLE_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
WHEELS_DATASET = "jigsaw-kit-wheels"
MODEL_DATASET_PREFIX = "jigsaw-kit-model-"
MODEL_MARKER = "jigsaw-kit-model.json"  # written into the model dataset so the notebook can find it by name
USERNAME_PLACEHOLDER = "USERNAME"


@dataclass(frozen=True)
class Wheel:
    name: str
    direct: bool  # True: named in requirements.txt with the kit's own range; False: only as another wheel's need
    reason: str


# Every wheel is a fallback: pip installs one only where the image's copy is missing or older than what the kit
# (direct=True: its pyproject range) or an installed package asks for, so carrying an unneeded one costs disk,
# never a changed environment.
KAGGLE_WHEELS: tuple[Wheel, ...] = (
    Wheel(
        "transformers",
        True,
        "the kit needs transformers>=5.2 (5.0 and 5.1 lack TrainingArguments.train_sampling_strategy); the image "
        "asks for >=5.0.0 (kaggle_requirements.txt), so an image built on 5.0/5.1 takes this one",
    ),
    Wheel("tokenizers", False, "transformers 5 pins a narrow tokenizers range; needed with a bundled transformers"),
    Wheel("huggingface-hub", False, "transformers 5 and datasets 5 need huggingface-hub>=1.3; needed with them"),
    Wheel("safetensors", False, "transformers 5 needs a recent safetensors"),
    Wheel(
        "datasets",
        True,
        "the Trainer recipe builds a datasets.Dataset; datasets 3.x/4.x predate huggingface-hub>=1 and break on import "
        "once hub is upgraded (kaggle_requirements.txt only asks for >=2.14.6)",
    ),
    Wheel("accelerate", True, "the Trainer of transformers 5 drives accelerate; not named by kaggle_requirements.txt"),
    Wheel("peft", True, "LoRA for decoder backbones (transformer/modeling.py); not named by kaggle_requirements.txt"),
    Wheel(
        "sentence-transformers",
        True,
        "the contrastive method's losses and trainer; 6.x is the line built on transformers 5; not named by "
        "kaggle_requirements.txt",
    ),
    Wheel("hf-xet", False, "huggingface-hub 2 requires hf-xet>=1.6 on x86_64"),
    Wheel("httpx2", False, "huggingface-hub 2's HTTP client; a new package, absent from the image"),
    Wheel("httpcore2", False, "required by httpx2; absent from the image"),
    Wheel("truststore", False, "required by httpx2/httpcore2 (>=0.10); not assumed in the image"),
    Wheel("h11", False, "httpcore2 needs h11>=0.16; the image's may be older"),
    Wheel("anyio", False, "httpx2 needs anyio>=4.10; the image's may be older"),
    Wheel("idna", False, "httpx2 needs idna>=3.18; the image's may be older"),
    Wheel("typing-extensions", False, "anyio 4.16 needs typing-extensions>=4.16"),
    Wheel("click", False, "huggingface-hub 2 needs click>=8.4.2; the image's may be older"),
    Wheel("regex", False, "transformers 5 needs regex>=2025.10.22"),
    Wheel("typer", False, "transformers 5 requires typer (its CLI); not assumed in the image"),
    Wheel("shellingham", False, "required by typer"),
    Wheel("annotated-doc", False, "required by typer 0.29; a new package"),
    Wheel("pyarrow", False, "datasets 5 needs pyarrow>=24 (55 MB: most of the bundle); the image's may be older"),
)

# Everything else the kit reaches is assumed present in the image at a version that satisfies the pinned
# packages above. `unaccounted_requirements()` walks the tested environment's metadata to keep these two
# lists complete (tests/kaggle/test_kaggle_rehearsal.py fails when a new dependency falls through).
IMAGE_ASSUMED: dict[str, str] = {
    "torch": "the Colab base's CUDA build, frozen by the image; never reinstalled (the install holds its version)",
    "numpy": "preinstalled",
    "pandas": "preinstalled (kit needs >=2.2)",
    "scikit-learn": "preinstalled",
    "scipy": "preinstalled (scikit-learn needs it)",
    "pyyaml": "preinstalled",
    "tqdm": "preinstalled (datasets needs >=4.66.3)",
    "matplotlib": "preinstalled",
    "joblib": "preinstalled",
    "kagglehub": "Kaggle's own client, preinstalled",
    "packaging": "preinstalled",
    "filelock": "preinstalled",
    "fsspec": "preinstalled (datasets caps it at <=2026.9.0)",
    "dill": "preinstalled with the image's datasets",
    "multiprocess": "preinstalled with the image's datasets",
    "xxhash": "preinstalled with the image's datasets",
    "psutil": "preinstalled",
    "pydantic": "preinstalled (typer needs >=2.5.3)",
    "rich": "preinstalled (typer needs >=13.8)",
}


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unaccounted_requirements(
    root: str = "jigsaw-kit", metadata: Callable[[str], list[str] | None] | None = None
) -> list[str]:
    """Requirements reachable from the kit that are neither bundled nor assumed in the image.

    Walks installed metadata (the tested environment) through bundled packages only: an image package's
    own requirements are the image's business. Markers are evaluated for Kaggle (Linux x86_64, 3.12).
    """
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    metadata = metadata or requires
    env = {
        "python_version": KAGGLE_PYTHON,
        "python_full_version": KAGGLE_PYTHON + ".0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    bundled = {canonical_name(w.name) for w in KAGGLE_WHEELS}
    assumed = {canonical_name(n) for n in IMAGE_ASSUMED}
    seen: set[str] = set()
    missing: list[str] = []
    todo = [canonical_name(root)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata(name) or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = canonical_name(req.name)
            if dep in bundled:
                todo.append(dep)
            elif dep not in assumed and dep not in missing:
                missing.append(f"{dep} (required by {name}: {spec})")
    return missing
