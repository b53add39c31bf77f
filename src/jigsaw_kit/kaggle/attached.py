"""The checkpoints attached to the notebook, found by the name a member's config gives them.

A bundled model dataset carries a marker (wheels.MODEL_MARKER) naming its checkpoint. A member's config stays as
written: each checkpoint name it loads (Method.checkpoints) is looked up here, and the map {name: attached folder}
is registered for the notebook's own probes (core.checkpoints.attached) and handed to the member's process
(JIGSAW_KIT_ATTACHED), where resolve_model finds the names there. Nothing rewrites `model` or `encoders`, except
that a fine-tune of the kit's default checkpoint trains the attached base encoder instead (member_overrides).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.bundling import slug
from jigsaw_kit.kaggle.members import MODEL_KEY, Member
from jigsaw_kit.kaggle.wheels import MODEL_DATASET_PREFIX, MODEL_MARKER
from jigsaw_kit.methods import method_class

if TYPE_CHECKING:
    from jigsaw_kit.core.config import Config
    from jigsaw_kit.kaggle.settings import NotebookSettings

BASE_ENCODER = "all-mpnet-base-v2"  # fine-tunes use it instead of the default MiniLM when its dataset is attached


def attached_models(root: Path, max_depth: int = 4) -> list[tuple[str, Path]]:
    """(name in the marker, folder) of every attached model dataset under root."""
    found: list[tuple[str, Path]] = []
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= max_depth:
            dirnames[:] = []
        if MODEL_MARKER in filenames:
            try:
                marked = json.loads((Path(dirpath) / MODEL_MARKER).read_text(encoding="utf-8")).get("name", "")
            except (OSError, ValueError):
                marked = ""
            found.append((str(marked), Path(dirpath)))
    return found


def _named(found: list[tuple[str, Path]], name: str) -> Path | None:
    for marked, d in found:
        if marked.lower() == name.lower() or slug(marked) == slug(Path(name).name):
            return d
    return None


def find_model_dir(root: Path, name: str, max_depth: int = 4) -> Path:
    """The attached model dataset whose marker names `name` (or the only one attached)."""
    found = attached_models(root, max_depth)
    named = _named(found, name)
    if named is not None:
        return named
    if len(found) == 1:
        return found[0][1]
    listing = ", ".join(f"{m} at {d}" for m, d in found) or "none"
    raise KitError(
        f"no attached model dataset for model {name!r} under {root} (found: {listing}). Attach the dataset "
        f"made by `jigsaw-kit bundle --model weights/{name}` ({MODEL_DATASET_PREFIX}{slug(name)})."
    )


def find_base_encoder(root: Path) -> Path | None:
    """The attached all-mpnet-base-v2 model dataset, or None (never another model: no only-one fallback)."""
    return _named(attached_models(root), BASE_ENCODER)


def member_overrides(member: Member, settings: NotebookSettings, base_encoder: Path | None = None) -> dict[str, Any]:
    """The member's overrides, the smoke run's step cap (JIGSAW_KIT_MAX_STEPS) and, for a fine-tune of the kit's
    default checkpoint, the attached base encoder as its model (`--model`); a member naming its own model keeps it."""
    from jigsaw_kit.core.checkpoints import DEFAULT_MODEL
    from jigsaw_kit.core.config import load_config

    cfg = load_config(member.config, member.overrides)
    cls = method_class(cfg.method)
    out = dict(member.overrides)
    if settings.max_steps is not None:
        out.update(cls.step_cap(cfg, settings.max_steps))
    if cls.fine_tunes and base_encoder is not None and MODEL_KEY not in member.overrides:
        if cls.checkpoints(cfg)[:1] == (DEFAULT_MODEL,):
            out[MODEL_KEY] = str(base_encoder)
    return out


def member_config(member: Member, settings: NotebookSettings, base_encoder: Path | None = None) -> Config:
    """The member's config as its process will load it (member_overrides); its checkpoint names stay as written."""
    from jigsaw_kit.core.config import load_config

    return load_config(member.config, member_overrides(member, settings, base_encoder))


def attached_for(cfg: Config, settings: NotebookSettings) -> dict[str, str]:
    """{name: attached folder} for every checkpoint the config loads that is not a folder itself; KitError with the
    dataset to attach. The first (the config's model) may take the only attached model dataset whatever its name;
    the others (extra encoders) must be attached by name, as that one is the model's."""
    found = attached_models(settings.input_root)
    out: dict[str, str] = {}
    for i, name in enumerate(method_class(cfg.method).checkpoints(cfg)):
        if Path(name).is_dir():
            continue
        if i == 0:
            out[name] = str(find_model_dir(settings.input_root, name))
            continue
        d = _named(found, name)
        if d is None:
            fix = f"attach {MODEL_DATASET_PREFIX}{slug(name)} (`jigsaw-kit bundle --model weights/{name}`)"
            raise KitError(f"no attached model dataset for encoder {name!r} under {settings.input_root}: {fix}.")
        out[name] = str(d)
    return out
