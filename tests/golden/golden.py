"""The golden predictions: every CPU config's submission on data/sample, made before a refactor and checked after.

    .venv/bin/python tests/golden/golden.py make    # writes tests/golden/sample_predictions.csv (before a change)
    .venv/bin/python tests/golden/golden.py check   # runs them again; exit 1 if any row moved by more than 1e-9

It goes through the command line only (`jigsaw-kit run`), so it holds whatever the code inside is rearranged
into. The embedding configs run with embed_backend=torch-fp32: the reference path, whose numbers do not depend on
whether this CPU has bf16 units (auto picks bf16 where it does); the contrastive tune likewise in fp32.
cpu-hybrid-ensemble attaches MiniLM a second time, as all-mpnet-base-v2 is not vendored in CI. Takes about
3 minutes on 2 cores: a benchmark, not a timed test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("sample_predictions.csv")
KIT = [sys.executable, "-m", "jigsaw_kit.cli"]
FP32 = ["--set", "embed_backend=torch-fp32"]
TUNE32 = ["--set", "tune.precision=fp32"]  # the tune as it ran before tune.precision existed (issue 26 made it auto)
RUNS = {
    "tfidf-lr": [],
    "cpu-hybrid": FP32,
    "cpu-hybrid-knn": FP32,
    "cpu-hybrid-pseudo": FP32,
    "cpu-hybrid-ensemble": [*FP32, "--set", "encoders=all-MiniLM-L6-v2"],
    "cpu-contrastive": [*FP32, *TUNE32],
    "cpu-triplet": [*FP32, *TUNE32],
    "cpu-minilm": [],
    "cpu-crossenc": [],
}
TOL = 1e-9


def predictions() -> pd.DataFrame:
    frames = []
    with tempfile.TemporaryDirectory(prefix="jigsaw-golden-") as tmp:
        for name, extra in RUNS.items():
            out = Path(tmp) / f"{name}.csv"
            cmd = [*KIT, "run", "--data-dir", str(ROOT / "data/sample"), "--config", name, "--output", str(out)]
            cmd += ["--run-dir", str(Path(tmp) / name), *extra]
            print("$", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            frames.append(pd.read_csv(out).assign(config=name))
    return pd.concat(frames, ignore_index=True)[["config", "row_id", "rule_violation"]]


def main(what: str) -> int:
    got = predictions()
    if what == "make":
        got.to_csv(GOLDEN, index=False, float_format="%.17g")
        print(f"wrote {GOLDEN} ({len(got)} rows, {got['config'].nunique()} configs)")
        return 0
    want = pd.read_csv(GOLDEN)
    both = want.merge(got, on=["config", "row_id"], how="outer", suffixes=("_golden", "_now"), indicator=True)
    missing = both[both["_merge"] != "both"]
    diff = (both["rule_violation_golden"] - both["rule_violation_now"]).abs()
    print("config                 rows  max |diff|")
    for name, group in both.groupby("config", sort=False):
        print(f"{name:22s} {len(group):4d}  {diff[group.index].max():.3g}")
    bad = len(missing) > 0 or not (diff.fillna(np.inf) <= TOL).all()
    print("golden check:", "FAILED" if bad else f"all {len(both)} predictions within {TOL:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] not in (["make"], ["check"]):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
