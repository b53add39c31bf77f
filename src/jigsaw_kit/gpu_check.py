"""GPU check: every GPU member's real code path, at the precision Kaggle runs it, on random-initialised models.

    python -m jigsaw_kit.gpu_check --json gpu_check.json   # full: one GPU, ~3-6 min, no network, no weights
    python -m jigsaw_kit.gpu_check --smoke                 # tiny shapes on the CPU in seconds (the suite runs it)

Made for a borrowed GPU machine (at most 10 minutes, a checkout of <= 64 MiB, no network): nothing is
downloaded. Each member's checkpoint is built here with random weights at the real model's shape, its
tokenizer from the words of data/sample (so token counts per row are near the real ones):

- deberta-v3-base: kaggle-t4-deberta (full fine-tune, seq-cls head) on a DeBERTa-v3-base-shaped encoder;
- mpnet-base:      kaggle-t4-mpnet (full fine-tune) on an MPNet-base-shaped encoder;
- qwen-lora:       kaggle-t4-qwen-lora (LoRA r=16 on all linear layers, yes-no head, gradient checkpointing)
                   on a Qwen2.5-0.5B-shaped decoder (the config's 3B model does not fit 10 minutes).

Each goes through pipeline.fit and pipeline.predict with its Kaggle config (only the model, the step count and
logging changed): the kit's Trainer with the deadline and nan-loss callbacks (methods/guards.py; a deadline is
set, far enough not to stop it unless --deadline-s says so) and the prediction checks. Precision is the
config's, resolved as on Kaggle: its explicit fp16 stays fp16 on any GPU, `auto` is fp16 on a T4 and bf16 on
sm_80+ (--precision overrides: `--precision fp16` runs every member at the T4's precision on any card).
Printed per member: training rows/s (the Trainer's own loop), predicted rows/s (model load included), peak GPU
memory of each phase (torch.cuda.max_memory_allocated), the checks that passed, and the card. Random weights
show the code path, speed and memory; they cannot show whether real Qwen weights overflow fp16 (real
activations have outliers random ones lack): the nan guards catch that on Kaggle. Exit status 1 when a member
fails; the others still run.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import re
import string
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jigsaw_kit import pipeline
from jigsaw_kit.core.checkpoints import set_offline
from jigsaw_kit.core.config import Config, load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.data.prep import apply_template
from jigsaw_kit.methods.guards import DEADLINE_ENV

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


@dataclass(frozen=True)
class Member:
    name: str
    config: str  # the Kaggle config it runs with
    family: str  # which checkpoint builder
    shape: dict[str, Any]  # the real model's config.json sizes
    steps: int  # optimizer steps in the full check
    predict_rows: int


MEMBERS = [
    Member(
        "deberta-v3-base",
        "kaggle-t4-deberta",
        "deberta",
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=128100),
        steps=60,
        predict_rows=8192,
    ),
    Member(
        "mpnet-base",
        "kaggle-t4-mpnet",
        "mpnet",
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=30527),
        steps=40,
        predict_rows=8192,
    ),
    Member(
        "qwen-lora",
        "kaggle-t4-qwen-lora",
        "qwen2",
        dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, vocab_size=151936),  # fmt: skip
        steps=12,
        predict_rows=2048,
    ),
]


# ---- text: words and rows from data/sample ---------------------------------------------------------------


def _sample_frames(sample: Path) -> tuple[pd.DataFrame, list[str]]:
    """(the sample's train.csv, every text in it: rules, bodies, examples)."""
    if not (sample / "train.csv").is_file():
        raise KitError(f"the GPU check reads its words from {sample}/train.csv, which is missing: pass --sample DIR.")
    train = pd.read_csv(sample / "train.csv")
    cols = [c for c in train.columns if c in ("body", "rule") or c.endswith(("_example_1", "_example_2"))]
    texts = [str(v) for c in cols for v in train[c].dropna()]
    return train, texts


def _words(texts: list[str]) -> list[str]:
    return sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})


def synthetic_rows(sample: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """n labelled rows: the sample's rules, comments of sample sentences joined to real comment lengths.

    Lengths are lognormal around 45 words (p95 ~110): rule + comment then tokenises to ~60-150 tokens,
    the competition's spread, so rows/s is near what real rows give.
    """
    train, _ = _sample_frames(sample)
    rng = np.random.default_rng(seed)
    train = train.dropna(subset=["body", "rule", "rule_violation"])
    # a comment is made of sample bodies with its label, so the label is learnable and the trained scores
    # depend on the input (random labels could leave them equal to fp16 precision, which the checks refuse)
    bodies = {y: [str(b) for b in train.loc[train["rule_violation"] == y, "body"]] for y in (0, 1)}
    rules = sorted(set(train["rule"].astype(str)))
    rows = []
    for i in range(n):
        target = int(np.clip(rng.lognormal(math.log(45), 0.55), 5, 300))
        label = int(rng.integers(2))
        words: list[str] = []
        while len(words) < target:
            words += bodies[label][int(rng.integers(len(bodies[label])))].split()
        text = " ".join(words[:target])
        # every 4th row "from the test file's examples", so upsample_test_examples has rows to repeat
        source = "test_pos" if i % 4 == 0 else "train_body"
        rows.append({"rule": rules[i % len(rules)], "text": text, "subreddit": "sub", "label": label, "source": source})
    return pd.DataFrame(rows)


# ---- checkpoints with random weights ---------------------------------------------------------------------


def make_deberta(d: Path, shape: dict[str, Any], words: list[str]) -> Path:
    # DeBERTa-v3 ships a sentencepiece model; a Unigram vocabulary given to DebertaV2Tokenizer is the same
    # tokenizer type, built offline without the sentencepiece package.
    import torch
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Tokenizer

    d.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(p, 0.0) for p in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    vocab += [("▁" + w, -1.0) for w in words] + [(w, -3.0) for w in words if w not in chars]
    vocab += [(c, -5.0) for c in chars] + [("▁" + c, -6.0) for c in chars if c not in words] + [("▁", -8.0)]
    vocab = list(dict(vocab).items())  # a piece once
    tok = DebertaV2Tokenizer(vocab=vocab)
    tok.save_pretrained(d)
    torch.manual_seed(0)
    hidden = shape["hidden_size"]
    cfg = DebertaV2Config(
        **{**shape, "vocab_size": max(shape.get("vocab_size", 0), len(tok))},
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256 if hidden >= 256 else 32,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
        pooler_hidden_size=hidden,
        pooler_dropout=0.0,
    )
    DebertaV2ForMaskedLM(cfg).save_pretrained(d)
    return d


def make_mpnet(d: Path, shape: dict[str, Any], words: list[str]) -> Path:
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetTokenizer

    d.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *sorted({w.lower() for w in words}), *chars]
    pieces += ["##" + c for c in chars]
    tok = MPNetTokenizer(vocab={p: i for i, p in enumerate(dict.fromkeys(pieces))})
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = MPNetConfig(
        **{**shape, "vocab_size": max(shape.get("vocab_size", 0), len(tok))},
        max_position_embeddings=514,
        relative_attention_num_buckets=32,
        layer_norm_eps=1e-5,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    MPNetForMaskedLM(cfg).save_pretrained(d)
    return d


def make_qwen2(d: Path, shape: dict[str, Any], texts: list[str]) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    d.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*texts, *["Answer: Yes", "Answer: No", "\nYes", "\nNo", "Yes", "No"] * 50], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", model_input_names=["input_ids", "attention_mask"]
    )
    fast.save_pretrained(d)
    torch.manual_seed(0)
    kv = shape.get("num_key_value_heads", 2)
    cfg = Qwen2Config(
        **{**shape, "vocab_size": max(shape.get("vocab_size", 0), len(fast)), "num_key_value_heads": kv},
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    model.to(torch.bfloat16).save_pretrained(d)  # as Qwen ships it; the kit loads the base in fp16 for LoRA
    return d


def build_checkpoint(member: Member, root: Path, smoke: bool, sample: Path) -> Path:
    _, texts = _sample_frames(sample)
    shape = {**TINY, "vocab_size": 0} if smoke else dict(member.shape)
    if member.family == "qwen2" and smoke:
        shape["num_key_value_heads"] = 2
    d = root / member.name
    if member.family == "deberta":
        return make_deberta(d, shape, _words(texts))
    if member.family == "mpnet":
        return make_mpnet(d, shape, _words(texts))
    return make_qwen2(d, shape, texts)


# ---- one member ------------------------------------------------------------------------------------------


def member_config(member: Member, model: Path, smoke: bool, precision: str, steps: int | None = None) -> Config:
    """The member's Kaggle config with only the model, the step count and the logging changed."""
    cfg = load_config(member.config)
    changes: dict[str, Any] = dict(
        name=f"gpu-check-{member.name}",
        model=str(model),
        max_steps=steps or (2 if smoke else member.steps),
        logging_steps=1 if smoke else 5,
        save_steps=0,
    )
    if smoke:
        changes["precision"] = "fp32"  # the CPU has no fp16 training
    elif precision != "config":
        changes["precision"] = precision
    return cfg.override(changes, f"gpu_check member {member.name}")


def _gpu_peak_gib(reset: bool = False) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def run_member(
    member: Member,
    root: Path,
    smoke: bool,
    precision: str,
    deadline_s: float,
    sample: Path,
    steps: int | None = None,
    predict_rows: int | None = None,
) -> dict[str, Any]:
    """Build, train and predict one member; its row of the report (status "ok" or "FAILED: reason").

    Over 60 lines: one try block, so that any failure becomes the member's row and the cleanup runs once.
    """
    import torch

    from jigsaw_kit.methods.transformer.modeling import resolve_precision

    row: dict[str, Any] = {"member": member.name, "config": member.config, "checks": []}
    t0 = time.perf_counter()
    try:
        path = build_checkpoint(member, root, smoke, sample)
        cfg = member_config(member, path, smoke, precision, steps)
        row["precision"] = resolve_precision(cfg)
        row["build_s"] = round(time.perf_counter() - t0, 1)
        rows_per_step = cfg.options.batch_size * cfg.options.grad_accum
        n_train = max(64, rows_per_step * cfg.options.max_steps)
        train = apply_template(synthetic_rows(sample, n_train, seed=1), cfg.template)
        n_test = predict_rows or (64 if smoke else member.predict_rows)
        test = apply_template(synthetic_rows(sample, n_test, seed=2), cfg.template)
        os.environ[DEADLINE_ENV] = str(time.time() + deadline_s)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            _gpu_peak_gib(reset=True)
        run_dir = root / f"run-{member.name}"
        result = pipeline.fit(cfg, train, run_dir)
        row["train_peak_gib"] = _gpu_peak_gib(reset=True)
        metrics = json.loads((run_dir / "train_metrics.json").read_text(encoding="utf-8"))
        final = next((h for h in reversed(result.log_history) if "train_runtime" in h), {})
        losses = [h[k] for h in result.log_history for k in ("loss", "train_loss") if k in h]
        row["train_rows_per_s"] = round(final.get("train_samples_per_second", float("nan")), 1)
        row["train_s"] = round(final.get("train_runtime", result.train_time_s), 1)
        row["steps"] = metrics.get("stopped_at_step") or metrics.get("planned_steps")
        row["checks"].append(f"loss finite in {len(losses)} logs (last {float(losses[-1]):.4f})" if losses else "")
        if metrics["stopped_early"]:
            row["checks"].append(
                f"deadline stopped it at step {metrics['stopped_at_step']} of {metrics['planned_steps']}"
            )
        else:
            row["checks"].append(f"deadline armed, not reached ({metrics['planned_steps']} steps)")
        t1 = time.perf_counter()
        preds = pipeline.predict(run_dir, cfg, test, show_progress=False)
        dt = time.perf_counter() - t1
        row["predict_peak_gib"] = _gpu_peak_gib(reset=True)
        row["predict_rows_per_s"] = round(len(test) / dt, 1)
        row["mean_tokens"] = _mean_tokens(run_dir, cfg, test)
        row["checks"].append(f"{len(preds)} predictions finite and varied (std {float(np.std(preds)):.3g})")
        row["checks"] = [c for c in row["checks"] if c]
        row["status"] = "ok"
    except Exception as e:  # one member's failure is a row of the report, the others still run
        row["status"] = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        log.exception("gpu check: %s failed", member.name)
    finally:
        os.environ.pop(DEADLINE_ENV, None)
        row["total_s"] = round(time.perf_counter() - t0, 1)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return row


def _mean_tokens(run_dir: Path, cfg: Config, rows: pd.DataFrame) -> float:
    from jigsaw_kit.core.checkpoints import load_tokenizer
    from jigsaw_kit.methods.transformer.predict import encode

    enc = encode(load_tokenizer(run_dir / "model"), rows.head(512), cfg.options.max_length)
    return round(float(np.mean([len(x) for x in enc["input_ids"]])), 1)


# ---- the command -----------------------------------------------------------------------------------------


def device_name() -> str:
    import torch

    if not torch.cuda.is_available():
        return "CPU (no CUDA device)"
    major, minor = torch.cuda.get_device_capability()
    return f"{torch.cuda.get_device_name(0)} (sm_{major}{minor}, {torch.cuda.device_count()} visible)"


def report(rows: list[dict[str, Any]], device: str) -> str:
    cols = ["member", "precision", "train_rows_per_s", "predict_rows_per_s", "train_peak_gib", "predict_peak_gib"]
    cols += ["mean_tokens", "total_s", "status"]
    lines = [f"GPU check on {device}", "  ".join(f"{c:>18}" if i else f"{c:<16}" for i, c in enumerate(cols))]
    for r in rows:
        cells = [str(r.get(c, "-")) for c in cols]
        lines.append("  ".join(f"{v:>18}" if i else f"{v:<16}" for i, v in enumerate(cells[:-1])) + "  " + cells[-1])
        lines += [f"    ok: {c}" for c in r["checks"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jigsaw_kit.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, a few steps, on the CPU (seconds)")
    ap.add_argument("--members", default=",".join(m.name for m in MEMBERS), help="comma-separated subset")
    ap.add_argument(
        "--precision",
        default="config",
        choices=["config", "auto", "fp16", "bf16", "fp32"],
        help="config: each member's Kaggle config (fp16 where it says so; auto = fp16 on a T4, bf16 on sm_80+)",
    )
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per member (default: each member's own)")
    ap.add_argument("--predict-rows", type=int, default=None, help="rows predicted per member (default: its own)")
    ap.add_argument(
        "--allow-cpu", action="store_true", help="run the full shapes without a GPU (slow: only to see that they build)"
    )
    ap.add_argument("--deadline-s", type=float, default=3600.0, help="JIGSAW_KIT_TRAIN_DEADLINE, seconds ahead")
    ap.add_argument("--sample", type=Path, default=SAMPLE, help="folder with the sample train.csv (words and rules)")
    ap.add_argument("--work-dir", type=Path, default=None, help="where checkpoints and runs go (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the report rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_offline()
    # progress bars would fill the few kB of output a borrowed machine sends back; the report is what counts
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    if not args.smoke and not args.allow_cpu and not torch.cuda.is_available():
        print("the full GPU check needs a CUDA GPU; run with --smoke for the CPU path", file=sys.stderr)
        return 2
    wanted = [m.strip() for m in args.members.split(",") if m.strip()]
    unknown = sorted(set(wanted) - {m.name for m in MEMBERS})
    if unknown:
        print(f"unknown members {unknown}; choose from {[m.name for m in MEMBERS]}", file=sys.stderr)
        return 2
    device = device_name()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="jigsaw-kit-gpu-check-"))
    rows = []
    for m in [m for m in MEMBERS if m.name in wanted]:
        row = run_member(
            m, work / m.name, args.smoke, args.precision, args.deadline_s, args.sample, args.steps, args.predict_rows
        )
        rows.append(row)
        print(report(rows[-1:], device).split("\n", 2)[-1], flush=True)
    print(report(rows, device))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device, "smoke": args.smoke, "members": rows}, indent=2))
    if args.work_dir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
