"""What the Kaggle image is assumed to hold, and which wheels the bundle carries: ONE place.

A test (tests/test_kaggle_rehearsal.py) walks the installed metadata through `unaccounted_requirements`
and fails when a new dependency is neither bundled nor assumed in the image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: importing these at runtime would pull pandas into `jigsaw-kit --help`
    pass


KAGGLE_PYTHON = "3.11"  # assumption: the GPU image's interpreter (cp311 wheels)
# Assumption: the image is Ubuntu 22.04 (glibc 2.35). pip download does not expand a manylinux tag to the
# older ones a glibc-2.35 system also runs, so every one is listed (plus the legacy aliases).
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
    pinned: bool  # True: installed at exactly the version tested here, even over the image's copy
    reason: str


# pinned=False wheels are fallbacks: pip takes one only when the image's copy is missing or too old for
# a pinned package's requirement, so carrying an unneeded one costs disk, never a changed environment.
KAGGLE_WHEELS: tuple[Wheel, ...] = (
    Wheel(
        "transformers",
        True,
        "the kit needs transformers>=5 (Trainer's train_sampling_strategy, processing_class, ratio warmup_steps); "
        "assumption: the image still ships 4.x",
    ),
    Wheel("tokenizers", True, "transformers 5 pins tokenizers to a newer minor than the image's 4.x-era copy"),
    Wheel("huggingface-hub", True, "transformers 5 and datasets need huggingface-hub>=1.31; the image has 0.x"),
    Wheel("safetensors", True, "transformers 5 needs safetensors>=0.8"),
    Wheel(
        "datasets",
        True,
        "the Trainer recipe builds a datasets.Dataset; the image's datasets (3.x/4.x) predates huggingface-hub>=1 and "
        "would break on import once hub is upgraded",
    ),
    Wheel("accelerate", True, "the Trainer of transformers 5 drives accelerate's newer API; pin the tested pair"),
    Wheel("peft", True, "LoRA for decoder backbones (transformer/modeling.py); the image's peft is too old"),
    Wheel(
        "sentence-transformers",
        True,
        "the contrastive method's losses and trainer; 6.x is the line built on transformers 5 (the image's is older)",
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
# lists complete (tests/test_kaggle_rehearsal.py fails when a new dependency falls through).
IMAGE_ASSUMED: dict[str, str] = {
    "torch": "CUDA build preinstalled; never reinstalled (gigabytes)",
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
    own requirements are the image's business. Markers are evaluated for Kaggle (Linux x86_64, 3.11).
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
