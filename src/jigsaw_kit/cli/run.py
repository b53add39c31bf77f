"""The job's commands: train, predict (alias submit), and run (build + train + predict in one)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jigsaw_kit.cli.common import add_config_args, config_from_args, run_dir_of
from jigsaw_kit.core.paths import check_writable

if TYPE_CHECKING:
    import pandas as pd

    from jigsaw_kit.pipeline import TrainResult


def train_table(result: TrainResult) -> str:
    """The compact table printed at the end of every train run."""
    losses = [(h["step"], h["loss"]) for h in result.log_history if "loss" in h]
    steps = max((h.get("step", 0) for h in result.log_history), default=0)
    lines = ["metric          value", f"rows            {result.rows}"]
    if steps:
        lines.append(f"steps           {steps}")
    if losses:
        lines.append(f"loss first      {losses[0][1]:.4f}  (step {losses[0][0]})")
        lines.append(f"loss last       {losses[-1][1]:.4f}  (step {losses[-1][0]})")
    lines.append(f"train time      {result.train_time_s:.1f} s")
    lines.append(f"rows/s          {result.rows_per_s:.1f}")
    return "\n".join(lines)


def print_train(result: TrainResult) -> None:
    print(train_table(result))
    print(f"train: {result.rows} rows, {result.train_time_s:.1f}s, {result.rows_per_s:.1f} rows/s -> {result.run_dir}")


def print_predict(sub: pd.DataFrame, dt: float, output: Path) -> None:
    v = sub["rule_violation"]
    print(
        f"predict: {len(sub)} rows in {dt:.1f}s ({len(sub) / max(dt, 1e-9):.0f} rows/s); "
        f"rule_violation min {v.min():.3f} mean {v.mean():.3f} max {v.max():.3f}"
    )
    print(f"submission: {output} ({len(sub)} rows, checked against sample_submission.csv)")


def cmd_train(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline

    cfg = config_from_args(args)
    run_dir = run_dir_of(args, cfg)
    check_writable(run_dir, "--run-dir", file=False)
    print_train(pipeline.train_processed(cfg, Path(args.processed), run_dir, resume=args.resume))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline

    run_dir = Path(args.run_dir)
    cfg = pipeline.check_run_dir(run_dir)  # config.yaml and the saved model, before the data is read
    output = Path(args.output)
    check_writable(output, "--output", file=True)
    res = pipeline.predict_processed(cfg, run_dir, Path(args.processed), output)
    print_predict(res.submission, res.predict_time_s, output)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline
    from jigsaw_kit.data.dataset import describe

    cfg = config_from_args(args)
    run_dir = run_dir_of(args, cfg)
    output = Path(args.output)
    check_writable(output, "--output", file=True)
    check_writable(run_dir, "--run-dir", file=False)
    res = pipeline.run(cfg, args.data_dir, output, run_dir)
    print(describe(res.processed))
    print_train(res.train)
    print_predict(res.submission, res.predict_time_s, output)
    print(f"done in {res.wall_time_s:.1f}s (config {cfg.name}, run dir {run_dir})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="fine-tune (or fit the baseline) on a processed dataset")
    p.add_argument("--processed", default="data/processed", help="folder written by build")
    p.add_argument("--run-dir", help="default runs/<config name>")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its latest checkpoint in <run-dir>/checkpoints (needs save_steps > 0)",
    )
    add_config_args(p)
    p.set_defaults(func=cmd_train)

    for name in ("predict", "submit"):
        p = sub.add_parser(name, help="predict the processed test rows and write submission.csv")
        p.add_argument("--processed", default="data/processed", help="folder written by build")
        p.add_argument("--run-dir", required=True, help="a run directory written by train")
        p.add_argument("--output", default="submission.csv")
        p.set_defaults(func=cmd_predict)

    p = sub.add_parser("run", help="the whole job: build, train, predict, write the submission")
    p.add_argument("--data-dir", help="competition folder (default: Kaggle mounts, then kagglehub)")
    p.add_argument("--output", default="submission.csv")
    p.add_argument("--run-dir", help="default runs/<config name>")
    add_config_args(p)
    p.set_defaults(func=cmd_run)
