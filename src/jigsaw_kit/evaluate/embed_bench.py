"""The embedding backends measured side by side on the real files, on this machine (issue 26).

    python -m jigsaw_kit.evaluate.embed_bench --data-dir ../shared/data/jigsaw-agile-community-rules \\
        [--texts 2000] [--backends torch-fp32 torch-bf16 onnx-fp32 onnx-int8] [--config cpu-contrastive] \\
        [--output runs/embed-bench.json]

For each backend (methods/embed_backends.py), in its own fresh process so that its peak memory is its own:
texts/s embedding the same N real texts (distinct labelled texts of train.csv and test.csv, bodies and
examples, drawn at random) through the kit's embedding loop (tokenisation, length-sorted batches, pooling;
no cache), the process's peak RSS, the one-off costs (model load, ONNX export, int8 quantisation, session
start and warm-up; the export runs first in a process of its own, into a fresh folder unless --keep-exports, so
the peak shown is the embedding's and the export's is shown beside it) and the cosine of each vector with
torch-fp32's (mean and min). Beside them, in this process, at the same N: tokenisation alone, the TF-IDF
vectorisers' fit and transform, and the per-rule logistic regressions on TF-IDF and on the embeddings.

Hosts differ by 2-3x on the same code, so read each backend as a ratio to torch-fp32 from the same run; the
header names the CPU (lscpu) and its matrix-unit flags. The ranking quality is the lb-proxy CV per backend,
which takes minutes; the commands are printed at the end (cv with --set embed_backend=..., then compare for
the paired fold differences against torch-fp32).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN_TEXTS = 56_000  # ~texts the default embeds on the 54,059-row rehearsal folder (README, "Quality")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024


def machine() -> dict[str, Any]:
    """CPU model (lscpu), the matrix-unit flags it has, cores and threads, library versions."""
    from jigsaw_kit.methods.embed_backends import cpu_flags

    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    import torch

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "absent"
    flags = cpu_flags()
    return {
        "cpu": model,
        "flags": [f for f in FLAGS if f in flags],
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort,
        "load_1min": os.getloadavg()[0],
    }


def sample_rows(data_dir: str, n: int, seed: int):
    """n labelled rows with distinct texts: train bodies and the examples of both files (the kit's training rows)."""
    from jigsaw_kit.data.competition import load_competition
    from jigsaw_kit.data.prep import training_rows

    comp = load_competition(data_dir)
    rows, _ = training_rows(comp.train, comp.test)
    rows = rows.drop_duplicates("text").reset_index(drop=True)
    take = np.random.default_rng(seed).permutation(len(rows))[: min(n, len(rows))]
    return rows.iloc[np.sort(take)].reset_index(drop=True)


def worker(args: argparse.Namespace) -> None:
    """One backend in this (fresh) process: prepare, warm up, embed the texts once, timed; write the vectors."""
    from jigsaw_kit.methods import embed, embed_backends

    texts = json.loads(Path(args.worker_texts).read_text(encoding="utf-8"))
    path, backend = Path(args.worker_model), args.worker
    out: dict[str, Any] = {"backend": backend, "resolved": embed_backends.resolve_backend(backend)}
    t0 = time.perf_counter()
    tokenizer, model = embed.load_encoder(path, args.max_length)
    out["load_s"] = time.perf_counter() - t0
    if out["resolved"].startswith("onnx"):
        _, costs = embed_backends.export(path, out["resolved"])
        out.update(costs)
    if args.export_only:  # the export's own process: its peak is not the embedding's
        out["export_peak_rss_mb"] = _peak_rss_mb()
        (Path(args.worker_out) / f"{backend}.export.json").write_text(json.dumps(out), encoding="utf-8")
        return
    t0 = time.perf_counter()
    embed._encode_uncached(path, texts[:16], args.max_length, args.token_budget, out["resolved"])  # session, warm-up
    out["warmup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = embed._encode_uncached(path, texts, args.max_length, args.token_budget, out["resolved"])
    out["embed_s"] = time.perf_counter() - t0
    out["texts_per_s"] = len(texts) / out["embed_s"]
    out["peak_rss_mb"] = _peak_rss_mb()
    np.save(Path(args.worker_out) / f"{backend}.npy", vectors)
    (Path(args.worker_out) / f"{backend}.json").write_text(json.dumps(out), encoding="utf-8")


def run_backend(backend: str, model: Path, texts_file: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, JIGSAW_KIT_EMBED_CACHE="0")  # nothing served from the vector cache
    if not args.keep_exports:
        env["JIGSAW_KIT_ONNX_DIR"] = str(work / "exports")  # a fresh export: its one-off cost is measured
    cmd = [sys.executable, "-m", "jigsaw_kit.evaluate.embed_bench", "--worker", backend, "--worker-model", str(model)]
    cmd += ["--worker-texts", str(texts_file), "--worker-out", str(work), "--max-length", str(args.max_length)]
    cmd += ["--token-budget", str(args.token_budget)]
    exported: dict[str, Any] = {}
    if backend.startswith("onnx"):  # export first, in a process of its own; the timed one then loads it
        done = subprocess.run([*cmd, "--export-only"], env=env, capture_output=True, text=True)
        if (work / f"{backend}.export.json").is_file():
            exported = json.loads((work / f"{backend}.export.json").read_text(encoding="utf-8"))
            exported = {k: v for k, v in exported.items() if k in ("export_s", "quantize_s", "export_peak_rss_mb")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    result = work / f"{backend}.json"
    if done.returncode != 0 or not result.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"backend": backend, "error": " | ".join(tail) or f"exit {done.returncode}"}
    return {**json.loads(result.read_text(encoding="utf-8")), **exported}


def time_heads(rows, vectors: np.ndarray | None, cfg, model: Path) -> dict[str, float]:
    """Tokenisation alone, TF-IDF fit/transform and the per-rule regressions (TF-IDF and embedding) at len(rows)."""
    from sklearn.linear_model import LogisticRegression

    from jigsaw_kit.methods.embed import load_encoder
    from jigsaw_kit.methods.embedding.heads import TfidfHead
    from jigsaw_kit.methods.rulewise import RuleRegressions

    out: dict[str, float] = {}
    texts, y, rules = rows["text"].tolist(), rows["label"].to_numpy(), rows["rule"]
    tokenizer, _ = load_encoder(model, cfg.options.max_length)
    t0 = time.perf_counter()
    tokenizer(texts, truncation=True, max_length=cfg.options.max_length)
    out["tokenize_s"] = time.perf_counter() - t0
    tfidf = TfidfHead(cfg.options.tfidf_max_features, cfg.options.tfidf_c, cfg.seed)
    t0 = time.perf_counter()
    x = tfidf._features(rows["text"], fit=True)
    out["tfidf_fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tfidf._features(rows["text"])
    out["tfidf_transform_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    RuleRegressions(tfidf.regression, "TF-IDF", warn=False).fit(x, y, rules)
    out["tfidf_regressions_s"] = time.perf_counter() - t0
    if vectors is not None:
        t0 = time.perf_counter()

        def lr():
            return LogisticRegression(C=cfg.options.embed_c, max_iter=3000, random_state=cfg.seed)

        RuleRegressions(lr, "embedding", warn=False).fit(vectors, y, rules)
        out["embed_regressions_s"] = time.perf_counter() - t0
    return out


def format_report(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"machine: {m['cpu']}; {m['cpus']} CPUs, torch threads {m['torch_threads']}; flags: {' '.join(m['flags'])}",
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; load (1 min) {m['load_1min']:.2f} at start, "
        f"{r['load_1min_end']:.2f} at end; {r['texts']:,} texts, max_length {r['max_length']}, model {r['model']}",
        "",
        f"{'backend':<11} {'ran as':<11} {'texts/s':>8} {'x fp32':>7} {'peak MB':>8} {'cos mean':>9} {'cos min':>8} "
        f"{'56k texts':>9}  one-off (s)",
    ]
    base = next((b for b in r["backends"] if b["backend"] == "torch-fp32" and "error" not in b), None)
    for b in r["backends"]:
        if "error" in b:
            lines.append(f"{b['backend']:<11} failed: {b['error']}")
            continue
        ratio = b["texts_per_s"] / base["texts_per_s"] if base else float("nan")
        once = ", ".join(f"{k[:-2]} {b[k]:.1f}" for k in ("load_s", "export_s", "quantize_s", "warmup_s") if k in b)
        if "export_peak_rss_mb" in b:
            once += f" (export peak {b['export_peak_rss_mb']:.0f} MB)"
        lines.append(
            f"{b['backend']:<11} {b['resolved']:<11} {b['texts_per_s']:>8.1f} {ratio:>7.2f} {b['peak_rss_mb']:>8.0f} "
            f"{b.get('cos_mean', float('nan')):>9.5f} {b.get('cos_min', float('nan')):>8.5f} "
            f"{HIDDEN_TEXTS / b['texts_per_s'] / 60:>7.1f} m  {once}"
        )
    h = r["heads"]
    lines += [
        "",
        f"at {r['texts']:,} texts: tokenisation alone {h['tokenize_s']:.2f} s; TF-IDF fit {h['tfidf_fit_s']:.2f} s, "
        f"transform {h['tfidf_transform_s']:.2f} s; per-rule regressions on TF-IDF {h['tfidf_regressions_s']:.2f} s"
        + (f", on embeddings {h['embed_regressions_s']:.2f} s" if "embed_regressions_s" in h else ""),
        "(56k texts: the embedding time at that rate for the ~56,000 texts of the 54,059-row rehearsal folder)",
        "",
        "ranking quality per backend (lb-proxy, 5 folds; minutes each), then paired fold differences vs torch-fp32:",
    ]
    for b in r["backends"]:
        lines.append(
            f"  jigsaw-kit cv --data-dir {r['data_dir']} --config {r['config']} --scheme lb-proxy --folds 5 "
            f"--set embed_backend={b['backend']} --output-dir runs/cv-{b['backend']}"
        )
    lines.append("  jigsaw-kit compare " + " ".join(f"runs/cv-{b['backend']}" for b in r["backends"]))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jigsaw_kit.evaluate.embed_bench", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", help="the competition folder (train.csv, test.csv, sample_submission.csv)")
    p.add_argument("--texts", type=int, default=2000, help="distinct real texts to embed (default 2000)")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--config", default="cpu-contrastive", help="its model, max_length, budget, C (default the default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--keep-exports", action="store_true", help="use the ONNX export cache (one-off costs 0 on a hit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="also write the results as JSON here")
    for hidden in ("--worker", "--worker-model", "--worker-texts", "--worker-out"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--max-length", type=int, help=argparse.SUPPRESS)
    p.add_argument("--token-budget", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Measure every backend in its own process (or, with --worker, be that process); print the table."""
    p = _parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.worker:
        worker(args)
        return 0
    if not args.data_dir:
        p.error("--data-dir is required")

    from jigsaw_kit.core.checkpoints import resolve_model
    from jigsaw_kit.core.config import load_config, parse_overrides

    cfg = load_config(args.config, parse_overrides(args.set))
    model = resolve_model(cfg.options.model)
    args.max_length, args.token_budget = cfg.options.max_length, cfg.options.predict_token_budget
    started = machine()
    rows = sample_rows(args.data_dir, args.texts, args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        work = Path(tmp)
        texts_file = work / "texts.json"
        texts_file.write_text(json.dumps(rows["text"].tolist()), encoding="utf-8")
        vectors: dict[str, np.ndarray] = {}
        for backend in args.backends:
            print(f"... {backend}", file=sys.stderr, flush=True)
            results.append(run_backend(backend, model, texts_file, work, args))
            if "error" not in results[-1]:
                vectors[backend] = np.load(work / f"{backend}.npy")
        ref = vectors.get("torch-fp32")
        for b in results:
            if ref is not None and b["backend"] in vectors:
                cos = (vectors[b["backend"]] * ref).sum(axis=1)
                b["cos_mean"], b["cos_min"] = float(cos.mean()), float(cos.min())
        heads = time_heads(rows, ref if ref is not None else next(iter(vectors.values()), None), cfg, model)
    report = {
        "machine": started,
        "load_1min_end": os.getloadavg()[0],
        "data_dir": args.data_dir,
        "config": args.config,
        "model": str(model),
        "texts": len(rows),
        "max_length": cfg.options.max_length,
        "backends": results,
        "heads": heads,
    }
    print(format_report(report))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
