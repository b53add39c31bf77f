"""Commands that judge methods: cv, compare, blend, and the embedding cache they lean on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jigsaw_kit.cli.common import add_config_args, config_from_args
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.paths import check_writable


def cmd_cv(args: argparse.Namespace) -> int:
    from jigsaw_kit.evaluate.curve import console as curve_console
    from jigsaw_kit.evaluate.curve import parse_fractions
    from jigsaw_kit.evaluate.cv import cross_validate
    from jigsaw_kit.evaluate.report import console_table, cv_headline

    cfg = config_from_args(args)
    default_root = Path("runs") / cfg.name
    out_dir = Path(args.output_dir) if args.output_dir else default_root / "cv"
    report_dir = Path(args.output_dir) if args.output_dir else default_root
    check_writable(out_dir, "--output-dir", file=False)
    fractions = parse_fractions(args.fractions) if (args.learning_curve or args.fractions) else None
    metrics, report = cross_validate(
        cfg, args.data_dir, args.scheme, args.folds, out_dir, report_dir, args.keep_models, fractions
    )
    print(console_table(metrics))
    print(cv_headline(metrics, args.scheme, cfg.name))
    if "learning_curve" in metrics:
        print(curve_console(metrics["learning_curve"]))
    print(f"wrote {out_dir}/oof.csv, {out_dir}/metrics.json, {report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from jigsaw_kit.evaluate.compare import compare, format_markdown, write_compare

    out = Path(args.output)
    check_writable(out, "--output", file=False)  # compare writes a folder of three files
    result = compare([Path(p) for p in args.inputs])
    print(format_markdown(result))
    written = write_compare(result, out)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


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


def cmd_blend(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.inputs]
    if args.output or not args.oof:  # checked before any input is read: a file, never made a folder
        check_writable(Path(args.output or "submission.csv"), "--output", file=True)
    if args.fit or args.per_rule:
        return _blend_fit(args, paths)
    if args.oof:
        from jigsaw_kit.evaluate.blend import blend_oof

        _, scores = blend_oof(paths, args.weights, Path(args.output) if args.output else None)
        for name, s in scores.items():
            print(f"{s:.4f}  mean_rule_auc  {name}")
        if args.output:
            print(f"wrote {args.output}")
        return 0
    if not args.test:
        raise KitError("blend needs --test test.csv (it gives each row's rule) unless --oof is set.")
    from jigsaw_kit.evaluate.blend import blend_to_submission

    output = args.output or "submission.csv"
    blend_to_submission(paths, Path(args.test), args.weights, Path(output))
    print(f"blended {len(paths)} inputs (weights {args.weights or 'equal'}) -> {output}")
    return 0


def _blend_fit(args: argparse.Namespace, paths: list[Path]) -> int:
    from jigsaw_kit.evaluate.blend_fit import fit_blend_oof, format_fit, write_fitted_blend

    if not args.oof or args.weights or (args.per_rule and not args.fit):
        raise KitError("--fit chooses weights from OOF files: use it with --oof, without --weights; "
                       "--per-rule needs --fit.")  # fmt: skip
    res = fit_blend_oof(paths, per_rule=args.per_rule, grid_step=args.grid_step)
    print(format_fit(res))
    if args.output:  # the fit as JSON: weights a notebook can read, with the scores behind them
        print(f"wrote {write_fitted_blend(res, Path(args.output))}")
    return 0


def register(sub: Any) -> None:
    """cv, compare and cache (blend comes last in --help: register_blend)."""
    from jigsaw_kit.data.folds import SCHEMES

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
    add_config_args(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("compare", help="CV output folders side by side, with paired fold differences vs the first")
    p.add_argument("inputs", nargs="+", help="folders written by `jigsaw-kit cv` (DIR or DIR/cv)")
    p.add_argument("--output", default="runs/compare", help="folder for compare.md/.json/.png (default runs/compare)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("cache", help="the disk cache of sentence embeddings: its folder and size, or clear it")
    p.add_argument("action", nargs="?", choices=["info", "clear"], default="info")
    p.set_defaults(func=cmd_cache)


def register_blend(sub: Any) -> None:
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
