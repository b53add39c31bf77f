"""What every command group shares: the config flags, the config they resolve to, the default run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `jigsaw-kit --help` imports no pandas
    from jigsaw_kit.core.config import Config

DEFAULT_CONFIG = "cpu-contrastive"  # the CPU default: best on the leaderboard-like CV (README, "Quality")


def add_config_args(p: argparse.ArgumentParser, default: str = DEFAULT_CONFIG) -> None:
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


def config_from_args(args: argparse.Namespace) -> Config:
    """The named config or YAML file, with --set pairs and the shortcut flags (--model, --epochs, ...) applied."""
    from jigsaw_kit.core.config import load_config, parse_overrides

    overrides: dict[str, Any] = parse_overrides(args.set)
    for key in ("model", "epochs", "max_steps", "seed"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return load_config(args.config, overrides)


def run_dir_of(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.run_dir) if getattr(args, "run_dir", None) else Path("runs") / cfg.name
