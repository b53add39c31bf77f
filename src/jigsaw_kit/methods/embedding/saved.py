"""A saved embedding recipe: folders and a small JSON, never the training rows.

    run_dir/recipe.json   the format, the run's id, the config it was fitted under, each encoder (checkpoint,
                          how it embeds, its fingerprint; `in_run` for a tuned one), the blend and part options
    run_dir/heads.joblib  the fitted TF-IDF head and encoder heads (scikit-learn objects), tagged with the id
    run_dir/lookup.json   the exact lookup: hashed (rule, text) keys of the labelled rows, tagged with the id
    run_dir/encoder/      the tuned encoder (contrastive)

recipe.json is written last, so a folder without it was never finished. The id ties the files of one fit
together: a folder whose files come from two fits is refused, as is one the kit before this format saved
(the whole model pickled in hybrid.joblib / contrastive.joblib).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import joblib

from jigsaw_kit.core.atomic import atomic_path, write_json
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embed_cache import checkpoint_fingerprint
from jigsaw_kit.methods.embedding.encoders import FrozenEncoder
from jigsaw_kit.methods.embedding.lookup import ExactLookup
from jigsaw_kit.methods.embedding.recipe import EmbeddingRecipe

log = logging.getLogger(__name__)

RECIPE, HEADS, LOOKUP, ENCODER = "recipe.json", "heads.joblib", "lookup.json", "encoder"
FORMAT, VERSION = "jigsaw-kit embedding recipe", 1


def _fingerprint(path: Path) -> str | None:
    try:
        return checkpoint_fingerprint(path)
    except (KitError, OSError):
        return None


def save_recipe(run_dir: Path, recipe: EmbeddingRecipe, method: str, config: dict[str, Any]) -> None:
    """Write the fitted recipe to run_dir (the tuned encoder copied in, unless it was tuned there)."""
    run_dir, run = Path(run_dir), uuid.uuid4().hex
    run_dir.mkdir(parents=True, exist_ok=True)
    encoders = []
    for i, enc in enumerate(recipe.encoders):
        entry = {**enc.to_json(), "in_run": None}
        if i == 0 and recipe.tuned:
            dest = run_dir / ENCODER
            if enc.path().resolve() != dest.resolve():
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(enc.path(), dest)
            entry.update(checkpoint=ENCODER, fitted_at=None, in_run=ENCODER)
        entry["fingerprint"] = _fingerprint(run_dir / ENCODER if entry["in_run"] else enc.path())
        encoders.append(entry)
    atomic_path(run_dir / HEADS, lambda t: joblib.dump({"run": run, "tfidf": recipe.tfidf, "heads": recipe.heads}, t))
    if recipe.lookup is not None:
        write_json(run_dir / LOOKUP, {"run": run, **recipe.lookup.to_json()})
    tfidf, tune = recipe.tfidf, recipe.tune
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "run": run,
        "encoders": encoders,
        "tfidf_weight": recipe.tfidf_weight,
        "lookup": LOOKUP if recipe.lookup is not None else None,
        # what the heads and the round were fitted with (read by people; predict reads the fitted heads)
        "tfidf": {"max_features": tfidf.max_features, "c": tfidf.c, "seed": tfidf.seed},
        "heads": [{k: getattr(h, k) for k in ("knn_k", "knn_weight", "centroid_features")} for h in recipe.heads],
        "pseudo_share": recipe.pseudo.share if recipe.pseudo is not None else 0,
        "tune": tune.key_parts() if tune is not None else None,
        "config": json.loads(json.dumps(config, default=str)),
    }
    write_json(run_dir / RECIPE, meta)  # last: its presence says the other files are complete


def _read_json(path: Path, name: str, run_dir: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KitError(
            f"{path} cannot be read ({type(e).__name__}: {str(e)[:80]}): it is cut short or damaged. "
            f"Train again (`jigsaw-kit train --config {name} --run-dir {run_dir}`)."
        ) from None


def _mixed(run_dir: Path, what: str) -> KitError:
    return KitError(
        f"{run_dir}: {what} comes from another fit than {RECIPE}: the folder mixes two runs. "
        "Train again into a fresh --run-dir."
    )


def _meta(run_dir: Path, method: str, name: str, old_file: str) -> dict[str, Any]:
    """recipe.json, checked; the KitError for a folder the kit before this format saved names the fix."""
    path = run_dir / RECIPE
    if not path.is_file():
        if (run_dir / old_file).is_file():
            raise KitError(
                f"{run_dir / old_file} was saved by an older jigsaw-kit version (the whole model pickled), which "
                f"this version does not load. Train again (`jigsaw-kit train --config {name} --run-dir {run_dir}`)."
            )
        raise KitError(f"{path} missing: train first (`jigsaw-kit train --config {name}`).")
    meta = _read_json(path, name, run_dir)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise KitError(f"{path} is not a saved embedding recipe of version {VERSION}: train again.")
    if meta.get("method") != method:
        raise KitError(f"{path} holds a {meta.get('method')} run, not a {method} one: train again.")
    return meta


def load_recipe(run_dir: Path, method: str, name: str, old_file: str) -> tuple[EmbeddingRecipe, dict[str, Any]]:
    """(the fitted recipe, the config it was fitted under) from run_dir; KitError naming the fix otherwise."""
    run_dir = Path(run_dir)
    meta = _meta(run_dir, method, name, old_file)
    try:
        heads = joblib.load(run_dir / HEADS)
    except Exception as e:  # a pickle cut short or overwritten fails with anything from EOFError to KeyError
        raise KitError(
            f"{run_dir / HEADS} cannot be loaded ({type(e).__name__}: {str(e)[:80]}): it is missing, cut short or "
            f"damaged. Train again (`jigsaw-kit train --config {name} --run-dir {run_dir}`)."
        ) from None
    if not isinstance(heads, dict) or heads.get("run") != meta["run"]:
        raise _mixed(run_dir, HEADS)
    lookup = None
    if meta["lookup"]:
        data = _read_json(run_dir / LOOKUP, name, run_dir)
        if not isinstance(data, dict) or data.get("run") != meta["run"]:
            raise _mixed(run_dir, LOOKUP)
        lookup = ExactLookup.from_json(data, run_dir / LOOKUP)
    encoders = [_encoder(run_dir, e) for e in meta["encoders"]]
    recipe = EmbeddingRecipe(
        tfidf=heads["tfidf"],
        encoders=encoders,
        heads=heads["heads"],
        tfidf_weight=meta["tfidf_weight"],
        lookup=lookup,
        tuned=bool(meta["encoders"][0]["in_run"]),
    )
    return recipe, meta["config"]


def _encoder(run_dir: Path, entry: dict[str, Any]) -> FrozenEncoder:
    fields = {k: entry[k] for k in ("checkpoint", "max_length", "token_budget", "backend", "fitted_at")}
    enc = FrozenEncoder(**fields)
    if not entry["in_run"]:
        now = _fingerprint(enc.path())
        if entry["fingerprint"] and now and now != entry["fingerprint"]:
            log.warning("encoder %s changed since this run was fitted: its heads read other vectors now", enc.path())
        return enc
    folder = run_dir / entry["in_run"]
    if not (folder / "config.json").is_file():
        raise KitError(f"{folder} holds no tuned encoder: train again into a fresh --run-dir.")
    if _fingerprint(folder) != entry["fingerprint"]:
        raise _mixed(run_dir, f"{entry['in_run']}/ (the tuned encoder)")
    return enc.at(folder)


def config_differences(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) of each key both hold whose value differs, nested keys dotted. A key
    only one side knows (added or dropped by another kit version) and `extra` (free-form notes) are left out."""
    out = []
    for k in sorted(set(saved) & set(now)):
        if not prefix and k == "extra":
            continue
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out
