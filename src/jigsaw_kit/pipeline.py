"""The kit's one pipeline, as plain functions: build -> fit -> predict -> submit.

    jigsaw-kit run --data-dir ../shared/data/jigsaw-agile-community-rules --config cpu-hybrid --output submission.csv

`jigsaw-kit run`/`train`/`predict`, `cv`, `bench` and the Kaggle notebook all call these, and
hold a `methods.base.Method` without asking which one. Files are written here, at stage
boundaries (processed data, run dir, submission); cli/ only parses arguments and prints.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit import methods
from jigsaw_kit.core.atomic import atomic_path, write_csv, write_json
from jigsaw_kit.core.checkpoints import resolve_model
from jigsaw_kit.core.config import Config, load_config, save_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.versions import versions
from jigsaw_kit.data import dataset
from jigsaw_kit.data.competition import load_competition
from jigsaw_kit.data.dataset import Processed
from jigsaw_kit.data.submission import make_submission
from jigsaw_kit.methods.guards import check_predictions

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    train_time_s: float
    rows: int
    rows_per_s: float
    log_history: list[dict[str, Any]] = field(default_factory=list)
    # stopped_early (by JIGSAW_KIT_TRAIN_DEADLINE), stopped_at_step, planned_steps: as in train_metrics.json
    stop: dict[str, Any] = field(default_factory=dict)


def check_inputs(cfg: Config) -> None:
    """Resolve and verify every checkpoint the config will load (KitError naming the fix), so that a
    missing or cut-short checkpoint fails before the data is built, not minutes later mid-load."""
    for name in methods.method_class(cfg.method).checkpoints(cfg):  # none for a method that embeds nothing
        resolve_model(name)


def build(cfg: Config, data_dir: str | Path | None = None, kaggle_root: str | Path | None = None) -> Processed:
    """Locate and validate the competition files, then melt, dedup and template them."""
    comp = load_competition(data_dir, kaggle_root=kaggle_root)
    log.info("data: %s", comp.data_dir)
    return dataset.build(comp, cfg)


def refuse_unfinished(cfg: Config, run_dir: Path, processed_dir: Path | None = None) -> None:
    """Starting over would delete hours of training: make the user say which they want."""
    ckpt = methods.method_class(cfg.method).unfinished(run_dir)
    if ckpt is not None:
        where = processed_dir or run_dir / "processed"
        raise KitError(
            f"{run_dir} holds a checkpoint of an unfinished run ({ckpt.name}). Continue it with "
            f"`jigsaw-kit train --resume --processed {where} --run-dir {run_dir}` (same --config/--set), "
            f"or start over: delete {ckpt.parent} or choose another --run-dir."
        )


def fit(
    cfg: Config,
    rows: pd.DataFrame,
    run_dir: Path,
    manifest: dict | None = None,
    resume: bool = False,
    unlabelled: pd.DataFrame | None = None,
) -> TrainResult:
    """Fit the config's method on templated labelled rows; save it and its provenance in run_dir.

    resume=True continues from the newest complete checkpoint in run_dir (KitError if the method keeps none).
    unlabelled: the rows that will be predicted (the test rows), for a method that learns from them at fit.
    """
    if rows.empty:
        raise KitError("no labelled rows to train on: check the data folder and use_test_examples.")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cls = methods.method_class(cfg.method)
    resume_from = cls.resume_point(cfg, run_dir, manifest) if resume else None
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun every rank runs this; one writes
    if main_process:
        atomic_path(run_dir / "config.yaml", lambda t: save_config(cfg, t))
        write_json(run_dir / "versions.json", versions())
        if manifest is not None:
            write_json(run_dir / "data_manifest.json", manifest)
    t0 = time.perf_counter()
    method = cls(cfg).fit(rows, run_dir, resume_from, unlabelled=unlabelled)
    if main_process:
        method.save(run_dir)
    dt = time.perf_counter() - t0
    stop = {"stopped_early": False, "stopped_at_step": None, "planned_steps": None, **method.train_info}
    passes = method.passes(len(rows))
    if stop["stopped_early"] and stop["planned_steps"]:  # the deadline cut the planned passes short
        passes *= stop["stopped_at_step"] / stop["planned_steps"]
    result = TrainResult(run_dir, dt, len(rows), len(rows) * passes / dt if dt > 0 else float("nan"))
    result.log_history, result.stop = method.log_history, stop
    _barrier()  # under torchrun the other ranks go on to predict from what rank 0 has just saved
    if main_process:
        write_json(run_dir / "log_history.json", result.log_history)
        write_json(
            run_dir / "train_metrics.json",
            {
                "train_time_s": dt,  # of this process: a resumed run counts only its own part
                "rows": len(rows),
                "epochs": passes,
                "rows_per_s": result.rows_per_s,
                "resumed_from": resume_from.name if resume_from is not None else None,
                **stop,
            },
        )
    return result


def _barrier() -> None:
    """Wait for every rank, when torchrun started several and their process group is up (the Trainer's)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return  # the usual case: no torch import for methods that never load it
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def check_run_dir(run_dir: Path) -> Config:
    """The config of a run folder `predict --run-dir` reads, after checking, before any work, that its
    config.yaml is valid and its saved model loads and was fitted under that config (KitError naming the fix)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise KitError(f"{run_dir} is not a run directory (no config.yaml). Train first: jigsaw-kit train ...")
    cfg = load_config(str(run_dir / "config.yaml"))
    methods.method_class(cfg.method).check_saved(run_dir, cfg)
    return cfg


def predict(run_dir: Path, cfg: Config, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
    """P(violation) for templated rows from the method saved in run_dir.

    KitError if they are nan/inf, or all equal over different inputs from a method whose scores must vary
    (guards.check_predictions): a broken member fails here, with its reason, not at the submission check
    or inside a blend.
    """
    if rows.empty:
        return np.empty(0)
    preds = methods.load(run_dir, cfg).predict(rows, show_progress=show_progress)
    varies = methods.method_class(cfg.method).scores_vary
    inputs = [c for c in ("input_a", "input_b") if c in rows.columns]
    if varies and inputs:  # identical inputs may score alike
        varies = len(rows.drop_duplicates(inputs)) > 1
    check_predictions(preds, f"{cfg.name} ({run_dir})", allow_constant=not varies)
    return preds


def submit(processed: Processed, preds: np.ndarray, output: Path, run_dir: Path | None = None) -> pd.DataFrame:
    """Write the checked submission (rows and order of sample_submission.csv) to output, and a copy in
    run_dir so that `jigsaw-kit blend` can take run dirs."""
    sub = make_submission(processed.test["row_id"], preds, processed.sample_submission)
    write_csv(sub, output)
    if run_dir is not None and Path(output).resolve() != (Path(run_dir) / "submission.csv").resolve():
        write_csv(sub, Path(run_dir) / "submission.csv")
    return sub


@dataclass
class RunResult:
    processed: Processed
    train: TrainResult
    submission: pd.DataFrame
    predict_time_s: float
    wall_time_s: float


def run(cfg: Config, data_dir: str | Path | None, output: Path, run_dir: Path) -> RunResult:
    """The whole job: check the checkpoints, build (a copy in run_dir/processed), fit, predict, submit.

    Under torchrun every rank builds the same data and trains its DDP share, predicts its shard (all ranks
    get every prediction), and rank 0 alone writes the processed copy and the submission.
    """
    t0 = time.perf_counter()
    main_process = int(os.environ.get("RANK", "0")) == 0
    check_inputs(cfg)  # a missing or damaged checkpoint fails before the data is built
    processed = build(cfg, data_dir)
    if main_process:
        dataset.save(processed, Path(run_dir) / "processed")
    refuse_unfinished(cfg, Path(run_dir))
    what = methods.method_class(cfg.method).title(cfg)
    log.info("training %s (%s) on %d rows -> %s", cfg.name, what, len(processed.train), run_dir)
    trained = fit(cfg, processed.train, Path(run_dir), manifest=processed.manifest, unlabelled=processed.test)
    t1 = time.perf_counter()
    preds = predict(Path(run_dir), cfg, processed.test)
    dt = time.perf_counter() - t1
    if main_process:
        sub = submit(processed, preds, Path(output), Path(run_dir))
    else:  # the same checked frame, unwritten
        sub = make_submission(processed.test["row_id"], preds, processed.sample_submission)
    return RunResult(processed, trained, sub, dt, time.perf_counter() - t0)


def train_processed(cfg: Config, processed_dir: Path, run_dir: Path, resume: bool = False) -> TrainResult:
    """`jigsaw-kit train`: check the checkpoints, read a processed folder built under this config's template,
    refuse to start over on an unfinished run (unless resuming it), and fit."""
    check_inputs(cfg)  # a missing or damaged checkpoint fails before the data is read
    processed = dataset.load(Path(processed_dir))
    dataset.check_template(processed, cfg)
    if not resume:
        refuse_unfinished(cfg, Path(run_dir), Path(processed_dir))
    what = methods.method_class(cfg.method).title(cfg)
    log.info("training %s (%s) on %d rows -> %s", cfg.name, what, len(processed.train), run_dir)
    test = processed.test  # the rows predict will score: a pseudo-label round learns from them at fit
    return fit(cfg, processed.train, Path(run_dir), manifest=processed.manifest, resume=resume, unlabelled=test)


@dataclass
class PredictResult:
    submission: pd.DataFrame
    predict_time_s: float  # the model's scoring alone, not the data read nor the writes


def predict_processed(cfg: Config, run_dir: Path, processed_dir: Path, output: Path) -> PredictResult:
    """`jigsaw-kit predict`: score a processed folder's test rows with the run saved in run_dir (its config
    checked by check_run_dir) and write the checked submission to output and run_dir."""
    processed = dataset.load(Path(processed_dir))
    dataset.check_template(processed, cfg)
    t0 = time.perf_counter()
    preds = predict(Path(run_dir), cfg, processed.test)
    dt = time.perf_counter() - t0
    return PredictResult(submit(processed, preds, Path(output), Path(run_dir)), dt)
