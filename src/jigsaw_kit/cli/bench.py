"""The bench command: the kit's training and inference recipe against a naive one, and a Kaggle projection."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jigsaw_kit.cli.common import add_config_args, config_from_args
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS


def cmd_bench(args: argparse.Namespace) -> int:
    from jigsaw_kit.bench import BenchSizes, format_table, run_bench

    sizes = BenchSizes(
        train_rows=args.train_rows,
        train_steps=args.train_steps,
        naive_steps=args.naive_steps,
        test_rows=args.test_rows,
        naive_test_rows=args.naive_test_rows,
        rehearsal_rows=args.rehearsal_rows,
    )
    cfg = config_from_args(args)
    result = run_bench(cfg, args.data_dir, args.device, Path(args.output_dir), args.kaggle_config, sizes,
                       args.assume_t4_speedup)  # fmt: skip
    print(format_table(result))
    print(f"wrote {Path(args.output_dir) / 'bench.json'} ({result['bench_seconds']:.0f}s)")
    return 0


def register(sub: Any) -> None:
    from jigsaw_kit.bench import DEFAULT_T4_SPEEDUP_OVER_CPU

    p = sub.add_parser("bench", help="measure kit vs naive training/inference throughput; project Kaggle time")
    p.add_argument("--data-dir", help="competition folder (default: Kaggle mounts, then kagglehub)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when visible, else cpu")
    p.add_argument("--output-dir", default="runs/bench", help="where bench.json goes (default runs/bench)")
    p.add_argument("--train-rows", type=int, help="sample this many training rows to draw batches from (default all)")
    p.add_argument("--train-steps", type=int, default=20, help="optimizer steps, kit recipe (default 20)")
    p.add_argument("--naive-steps", type=int, default=5, help="optimizer steps, naive recipe (default 5)")
    p.add_argument("--test-rows", type=int, default=2000, help="synthetic rows the kit predicts (default 2000)")
    p.add_argument("--naive-test-rows", type=int, default=160, help="synthetic rows naive predicts (default 160)")
    p.add_argument(
        "--rehearsal-rows",
        type=int,
        default=HIDDEN_TEST_ROWS,
        help=f"synthetic test rows built, tokenized and batched (default {HIDDEN_TEST_ROWS}, the hidden test's size)",
    )
    p.add_argument("--kaggle-config", default="kaggle-t4", help="config whose epochs the projection uses")
    p.add_argument(
        "--assume-t4-speedup",
        type=float,
        help=f"ASSUMED speed of one T4 relative to the measured device (default {DEFAULT_T4_SPEEDUP_OVER_CPU:g} "
        "on cpu, 1 on cuda)",
    )
    add_config_args(p, default="cpu-minilm")  # the bench measures fine-tuning recipes
    p.set_defaults(func=cmd_bench)
