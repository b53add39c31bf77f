"""The processed dataset: templated training rows, rows to predict, and a manifest.

`build` is pure (frames in, frames out); `save`/`load` are the stage boundary on disk
(parquet + manifest.json + a copy of sample_submission.csv so later stages need nothing else).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from jigsaw_kit.core.atomic import atomic_path, write_csv, write_json
from jigsaw_kit.core.config import Config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.competition import CompetitionData
from jigsaw_kit.data.prep import apply_template, rows_to_predict, training_rows


@dataclass
class Processed:
    train: pd.DataFrame  # rule, text, label, source, subreddit, origin_row_id, votes, input_a, input_b
    test: pd.DataFrame  # row_id, rule, text, subreddit, example columns, input_a, input_b
    sample_submission: pd.DataFrame
    manifest: dict[str, Any]


def build(comp: CompetitionData, cfg: Config) -> Processed:
    rows, stats = training_rows(comp.train, comp.test, use_test_examples=cfg.use_test_examples)
    rows = apply_template(rows, cfg.template)
    test = apply_template(rows_to_predict(comp.test), cfg.template)
    manifest = {
        "data_dir": str(comp.data_dir),
        "hashes": comp.hashes,
        "template": cfg.template,
        "use_test_examples": cfg.use_test_examples,
        "counts": {
            "train_csv_rows": len(comp.train),
            "test_csv_rows": len(comp.test),
            "dedup": stats.to_dict(),
            "training_rows": len(rows),
            "training_rows_by_source": rows["source"].value_counts().to_dict(),
            "training_rows_by_rule": rows["rule"].value_counts().to_dict(),
            "positives": int(rows["label"].sum()),
            "test_rows_by_rule": test["rule"].value_counts().to_dict(),
            "test_rules_unseen_in_train": sorted(set(test["rule"]) - set(comp.train["rule"].str.strip())),
            "test_rows_with_empty_body": int((test["text"] == "").sum()),  # scored anyway (see data.py)
        },
    }
    return Processed(rows, test, comp.sample_submission, manifest)


def save(p: Processed, out_dir: Path) -> Path:
    """Write the folder; manifest.json goes last, so its presence means every other file is complete."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rebuild over an old folder: drop the old manifest first, or a crash halfway would leave new
    # parquet files under an old manifest, a folder that looks complete and is not.
    (out_dir / "manifest.json").unlink(missing_ok=True)
    for name, df in (("train", p.train), ("test", p.test)):
        atomic_path(out_dir / f"{name}.parquet", lambda t, df=df: df.to_parquet(t, index=False))
    write_csv(p.sample_submission, out_dir / "sample_submission.csv")
    write_json(out_dir / "manifest.json", p.manifest)
    return out_dir


def load(out_dir: Path) -> Processed:
    out_dir = Path(out_dir)
    if not (out_dir / "manifest.json").is_file():
        raise KitError(
            f"{out_dir} is not a processed dataset (no manifest.json). "
            f"Build it first: python build_dataset.py --data-dir DIR --out {out_dir}"
        )
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    train = pd.read_parquet(out_dir / "train.parquet")
    test = pd.read_parquet(out_dir / "test.parquet")
    sample = pd.read_csv(out_dir / "sample_submission.csv")
    return Processed(train, test, sample, manifest)


def check_template(p: Processed, cfg: Config) -> None:
    if p.manifest.get("template") != cfg.template:
        raise KitError(
            f"the processed data was built with template {p.manifest.get('template')!r} but config "
            f"'{cfg.name}' uses {cfg.template!r}. Rebuild: jigsaw-kit build --config {cfg.name} ..."
        )


def describe(p: Processed) -> str:
    """What `build` and `run` print about the data: rows in, rows out, and what dedup settled."""
    c = p.manifest["counts"]
    d = c["dedup"]
    line = (
        f"data: {c['train_csv_rows']} train rows, {c['test_csv_rows']} test rows -> {d['rows_in']} melted rows -> "
        f"{c['training_rows']} labelled rows after dedup ({d['duplicates_merged']} duplicates merged, "
        f"{d['conflicts_majority']} conflicts settled by majority, {d['ties_dropped']} ties dropped); "
        f"template {p.manifest['template']!r}"
    )
    if c["test_rules_unseen_in_train"]:
        line += (
            "\n      test rules absent from train.csv (labelled only by test examples): "
            f"{len(c['test_rules_unseen_in_train'])}"
        )
    return line
