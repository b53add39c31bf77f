"""Where the sentence encoder runs: PyTorch fp32 (the reference), PyTorch bf16, ONNX Runtime fp32 or int8.

The config key `embed_backend` picks one for every encoder the embedding methods use (frozen and tuned):

- torch-fp32: the model in PyTorch, float32; exactly what the kit did before this choice existed.
- torch-bf16: the same model under torch.autocast(bfloat16) on the CPU (AVX512-BF16 / AMX-BF16 run it fast).
- onnx-fp32: the encoder exported by PyTorch's own exporter (torch.onnx.export, dynamo) and run by onnxruntime.
- onnx-int8: that export with its weights quantised to int8 by onnxruntime.quantization.quantize_dynamic
  (activations quantised per batch at run time; VNNI / AMX-INT8 run the int8 products).
- auto: the first of AUTO_ORDER this machine can run; PyTorch on a GPU.

Every backend returns the last hidden state; pooling (mean over real tokens) and L2 normalisation are the
same code for all (embed.py). A backend that cannot run here (onnxruntime, onnx or onnxscript not installed,
an export that fails) falls back to torch-fp32 with one warning, never an error: the Kaggle image may lack
onnxruntime. Exports are cached on disk under a key of the checkpoint's content (embed_cache.checkpoint_fingerprint),
the backend, the opset and the exporter/runtime versions, so a tuned encoder is exported once after its tune.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import io
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.embed_cache import cache_root, checkpoint_fingerprint
from jigsaw_kit.methods.options import EMBED_BACKENDS

log = logging.getLogger(__name__)

BACKENDS = EMBED_BACKENDS
REFERENCE = "torch-fp32"
# auto's preference on a CPU, fastest first; the first this machine can run wins. Measured (README, "Embedding
# backends"): torch-bf16 embeds 2.7x torch-fp32's texts/s on AVX512-BF16/AMX and reads 0.8591 on 5 lb-proxy folds
# against torch-fp32's 0.8590 (within the 0.002 allowed); onnx-int8 is slower than bf16 here (1.34x) and less
# faithful (cosine min 0.975), onnx-fp32 slower than fp32. A CPU without the bf16 units runs fp32.
AUTO_ORDER: tuple[str, ...] = ("torch-bf16", "torch-fp32")
OPSET = 18
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# the CPU units that make a backend worth choosing (Linux /proc/cpuinfo flag names)
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_OFF = ("0", "off", "false", "no")
_TEMP: list[tempfile.TemporaryDirectory] = []  # the export folder of a process whose disk cache is off
_WARNED: set[tuple[str, str]] = set()


class BackendUnavailable(RuntimeError):
    """This backend cannot run here (a package missing, an export failing); the caller falls back."""


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise KitError(f"embed_backend must be one of {BACKENDS}, got {name!r}.")
    return name


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo; empty where it cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def missing_packages(backend: str) -> list[str]:
    """The Python packages this backend needs that are not installed (onnx backends: runtime and exporter)."""
    if not backend.startswith("onnx"):
        return []
    return [m for m in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(m) is None]


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _warn_once(key: tuple[str, str], msg: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(msg, *args)


def usable(backend: str, flags: frozenset[str] | None = None) -> str | None:
    """None if this CPU machine can run `backend` well, else why not."""
    flags = cpu_flags() if flags is None else flags
    missing = missing_packages(backend)
    if missing:
        return f"{', '.join(missing)} not installed"
    if backend == "onnx-int8" and not flags & INT8_FLAGS:
        return f"the CPU has none of {sorted(INT8_FLAGS)}"
    if backend == "torch-bf16" and not flags & BF16_FLAGS:
        return f"the CPU has none of {sorted(BF16_FLAGS)}"
    return None


def resolve_backend(name: str) -> str:
    """The backend that will actually run for config value `name`; logs once why when it is not `name`."""
    check_backend(name)
    if _on_gpu():  # onnxruntime here is the CPU build; on a GPU the kit keeps PyTorch
        if name.startswith("onnx"):
            _warn_once((name, "gpu"), "embed_backend %s: a GPU is present, so the encoder runs in PyTorch", name)
            return REFERENCE
        return REFERENCE if name == "auto" else name
    if name == "auto":
        for cand in AUTO_ORDER:
            why = usable(cand)
            if why is None:
                return cand
            _warn_once((cand, "auto"), "embed_backend auto: skipping %s (%s)", cand, why)
        return REFERENCE
    missing = missing_packages(name)
    if missing:  # an explicit choice the CPU merely runs slowly is honoured; a missing package is not
        _warn_once((name, "missing"), "embed_backend %s: %s not installed; using torch-fp32", name, ", ".join(missing))
        return REFERENCE
    return name


def pooling_tag(backend: str) -> str:
    """The disk cache's pooling name for vectors of this backend; torch-fp32 keeps the cache's historic "mean"."""
    return "mean" if backend == REFERENCE else "mean_" + backend.replace("-", "_")


def onnx_root() -> Path:
    """Where exports are kept: JIGSAW_KIT_ONNX_DIR, else beside the embedding cache (<cache>-onnx); a temporary
    folder for this process when the embedding cache is off (JIGSAW_KIT_EMBED_CACHE=0)."""
    if os.environ.get("JIGSAW_KIT_ONNX_DIR"):
        return Path(os.environ["JIGSAW_KIT_ONNX_DIR"]).expanduser()
    root = cache_root()
    if root is not None:
        return root.with_name(root.name + "-onnx")
    if not _TEMP:
        _TEMP.append(tempfile.TemporaryDirectory(prefix="jigsaw-kit-onnx-"))
        atexit.register(_TEMP[0].cleanup)
    return Path(_TEMP[0].name)


def _versions() -> str:
    import onnxruntime
    import torch

    return f"opset{OPSET}-torch{torch.__version__}-ort{onnxruntime.__version__}"


def export_dir(model_path: Path, backend: str) -> Path:
    """The cached export's folder: checkpoint content + backend + opset and versions, filesystem-safe."""
    key = f"{checkpoint_fingerprint(model_path)[:32]}-{backend}-{_versions()}"
    return onnx_root() / re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _hidden_module(model):
    """The encoder as the exporter wants it: the three token tensors in, the last hidden state out (models
    without token types, e.g. MPNet, are called without them and the export keeps only the inputs it uses)."""
    import inspect

    import torch

    typed = "token_type_ids" in inspect.signature(model.forward).parameters

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            extra = {"token_type_ids": token_type_ids} if typed else {}
            return self.m(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    return Hidden()


def _export_fp32(model_path: Path, target: Path) -> None:
    """torch.onnx.export (dynamo) of a fresh eager-attention copy of the checkpoint: batch and length dynamic."""
    import torch
    from transformers import AutoModel

    from jigsaw_kit.methods.transformer.modeling import load_pretrained

    # eager attention: the traced SDPA mask path of transformers 5 exports, but this one is the plain graph
    model = load_pretrained(AutoModel, model_path, "text encoder", attn_implementation="eager").eval()
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=model.config.max_position_embeddings)
    dims = {k: {0: batch, 1: length} for k in INPUTS}
    sample = {k: torch.ones((2, 8), dtype=torch.long) for k in INPUTS}
    sample["attention_mask"][1, 5:] = 0
    sample["token_type_ids"].zero_()
    chatter = io.StringIO()  # the exporter prints its steps and warns about axis names: kept off stdout
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _hidden_module(model),
            tuple(sample[k] for k in INPUTS),
            str(target),
            dynamo=True,
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_shapes=dims,
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    log.debug("torch.onnx.export of %s: %s", model_path, chatter.getvalue())


def export(model_path: Path, backend: str) -> tuple[Path, dict[str, float]]:
    """The cached ONNX file for this checkpoint and backend, exported (and quantised) now if absent.
    Returns (path, seconds spent exporting and quantising this time: empty when it was cached)."""
    final = export_dir(model_path, backend)
    onnx_file = final / "model.onnx"
    if onnx_file.is_file():
        _touch(final)
        return onnx_file, {}
    costs: dict[str, float] = {}
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        t0 = time.perf_counter()
        fp32 = export_dir(model_path, "onnx-fp32") / "model.onnx"
        if backend == "onnx-int8" and fp32.is_file():
            shutil.copy(fp32, work / "fp32.onnx")
        else:
            _export_fp32(model_path, work / "fp32.onnx")
            costs["export_s"] = time.perf_counter() - t0
        if backend == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            t1 = time.perf_counter()
            # per channel: one scale per output column; per tensor, MiniLM's vectors fell to cosine ~0.95 with
            # fp32's (0.99 per channel) on 200 texts. The quantiser logs every node on the root logger: muted
            previous = logging.root.manager.disable
            logging.disable(logging.WARNING)
            try:
                quantize_dynamic(work / "fp32.onnx", work / "model.onnx", weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(previous)
            costs["quantize_s"] = time.perf_counter() - t1
            (work / "fp32.onnx").unlink()
        else:
            (work / "fp32.onnx").rename(work / "model.onnx")
        try:
            os.replace(work, final)  # atomic: readers see a whole export or none
        except OSError:
            if not onnx_file.is_file():  # another process won the race: theirs is as good; else a real failure
                raise
        log.info("exported %s as %s to %s (%s)", model_path.name, backend, final, costs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prune_exports(final.parent, keep=final)
    return onnx_file, costs


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)  # last use, for prune_exports
    except OSError:
        pass


def prune_exports(root: Path, keep: Path | None = None, most: int | None = None) -> list[Path]:
    """Delete the least recently used exports beyond `most` (JIGSAW_KIT_ONNX_KEEP, default 8): each tuned encoder
    (every CV fold of cpu-contrastive) is a new checkpoint and so a new export of ~23 MB (int8) to ~90 MB (fp32)."""
    if most is None:
        try:
            most = max(1, int(os.environ.get("JIGSAW_KIT_ONNX_KEEP", "8")))
        except ValueError:
            most = 8
    pattern = re.compile(r"[0-9a-f]{32}-(?:onnx-fp32|onnx-int8)-opset\d+-.+")
    found = []
    for f in Path(root).iterdir() if Path(root).is_dir() else []:
        if f.is_dir() and pattern.fullmatch(f.name) and f != keep:
            try:
                found.append((f.stat().st_mtime_ns, f))
            except FileNotFoundError:
                continue
    doomed = [f for _, f in sorted(found, reverse=True)[most - (keep is not None) :]]
    for f in doomed:
        shutil.rmtree(f, ignore_errors=True)
    if doomed:
        log.info("ONNX exports in %s: removed the %d least recently used", root, len(doomed))
    return doomed


def ort_session(onnx_file: Path):
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = torch.get_num_threads()  # the same cores PyTorch would use
    opts.log_severity_level = 3
    # no busy-waiting between ops: Python tokenises and pads between batches, and on a few shared cores a
    # spinning pool steals their time (MiniLM, 2 loaded cores: 9.5 s without against 11.8 s with, same batches)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])


def make_forward(backend: str, model_path: Path, model, device) -> Callable[[dict], object]:
    """feats (torch tensors on device) -> last hidden state as a float32 torch tensor, for this backend.
    Raises BackendUnavailable when an onnx backend cannot be prepared here."""
    import torch

    if backend == "torch-fp32":
        return lambda feats: model(**feats).last_hidden_state.float()
    if backend == "torch-bf16":

        def bf16(feats):
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                return model(**feats).last_hidden_state.float()

        return bf16
    try:
        session = ort_session(export(model_path, backend)[0])
    except Exception as e:  # a package missing, an exporter failure on an unusual architecture, a full disk
        raise BackendUnavailable(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    wanted = [i.name for i in session.get_inputs()]

    def ort_forward(feats):
        arrays = {k: feats[k].cpu().numpy().astype(np.int64) for k in wanted if k in feats}
        if "token_type_ids" in wanted and "token_type_ids" not in arrays:
            arrays["token_type_ids"] = np.zeros_like(arrays["input_ids"])
        return torch.from_numpy(session.run(None, arrays)[0]).float()

    return ort_forward
