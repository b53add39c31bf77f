"""Commands for Kaggle: bundle (the datasets to upload) and kaggle-plan (a fine-tune's time against the limit)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jigsaw_kit.cli.common import add_config_args, config_from_args
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS


def cmd_bundle(args: argparse.Namespace) -> int:
    from jigsaw_kit.kaggle.bundling import bundle
    from jigsaw_kit.kaggle.wheels import USERNAME_PLACEHOLDER

    report = bundle(
        Path(args.model),
        Path(args.out),
        wheel_dir=Path(args.wheel_dir) if args.wheel_dir else None,
        download=not args.no_download,
        kit_only=args.kit_only,
        username=args.username,
    )
    for line in report.lines():
        print(line)
    print(
        f"next: kaggle datasets create -p {report.wheels_dir} --dir-mode zip\n"
        f"      kaggle datasets create -p {report.model_dir} --dir-mode zip\n"
        "      kaggle kernels push -p kernel"
        + (f"   (first replace {USERNAME_PLACEHOLDER} in the dataset-metadata.json files and kernel/)"
           if args.username == USERNAME_PLACEHOLDER else "")
    )  # fmt: skip
    return 0


def cmd_kaggle_plan(args: argparse.Namespace) -> int:
    from jigsaw_kit.kaggle.plan import kaggle_plan

    cfg = config_from_args(args)
    for line in kaggle_plan(
        cfg,
        args.data_dir,
        args.test_rows,
        args.budget_hours,
        args.devices,
        args.train_rows_per_s,
        args.predict_rows_per_s,
    ):
        print(line)
    return 0


def register(sub: Any) -> None:
    from jigsaw_kit.kaggle.budget import ASSUMED_T4, DEFAULT_BUDGET_HOURS
    from jigsaw_kit.kaggle.wheels import USERNAME_PLACEHOLDER

    p = sub.add_parser("bundle", help="build the Kaggle datasets: kit + dependency wheels, and the checkpoint")
    p.add_argument("--model", required=True, help="checkpoint folder to ship (e.g. weights/all-MiniLM-L6-v2)")
    p.add_argument("--out", default="dist/kaggle", help="output folder (default dist/kaggle)")
    p.add_argument("--wheel-dir", help="folder of already-downloaded wheels, used before pip download")
    p.add_argument("--no-download", action="store_true", help="never use the network; missing wheels are an error")
    p.add_argument("--kit-only", action="store_true", help="bundle only the kit's wheel (image has the rest)")
    p.add_argument("--username", default=USERNAME_PLACEHOLDER, help="your Kaggle username for the dataset ids")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("kaggle-plan", help="project a Kaggle run's time against the 12 h limit")
    p.add_argument("--data-dir", help="competition folder (default: Kaggle mounts, then kagglehub)")
    p.add_argument(
        "--test-rows", type=int, default=HIDDEN_TEST_ROWS, help=f"hidden test size (default {HIDDEN_TEST_ROWS})"
    )
    p.add_argument("--train-rows-per-s", type=float, help=f"default {ASSUMED_T4.train_rows_per_s:g} (assumed T4)")
    p.add_argument("--predict-rows-per-s", type=float, help=f"default {ASSUMED_T4.predict_rows_per_s:g} (assumed T4)")
    p.add_argument("--budget-hours", type=float, default=DEFAULT_BUDGET_HOURS)
    p.add_argument("--devices", type=int, default=1, help="GPUs sharing the batch (torchrun)")
    add_config_args(p, default="cpu-minilm")  # plans fine-tuning time; the hybrid needs no plan
    p.set_defaults(func=cmd_kaggle_plan)
