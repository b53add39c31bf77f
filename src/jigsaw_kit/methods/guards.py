"""Guards every trained member runs under: a training deadline, a finite loss, usable predictions.

    JIGSAW_KIT_TRAIN_DEADLINE=1767225600 jigsaw-kit run ...   # unix epoch seconds; unset = no deadline
    trainer = Trainer(..., callbacks=training_guards())       # DeadlineCallback + NanLossCallback
    check_predictions(preds, "kaggle-t4-deberta")             # KitError on nan/inf or a constant

Deadline: a member that writes its predictions only at the very end loses everything when the
notebook's time guard stops it. `DeadlineCallback` instead ends training normally once the clock
passes the deadline (the caller sets it early enough to predict and write), so the model is saved
and predicted with; the run is marked `stopped_early` in train_metrics.json. Under DDP the ranks
agree on the stop (an all-reduce of one flag per step): a rank that stopped alone would hang the others.

NaN: fp16 overflow shows as a nan/inf loss long before the submission check would see it.
`NanLossCallback` fails at the first logged loss that is not finite (the Trainer's
logging_nan_inf_filter must be off, or it hides them: training_arguments turns it off), and
`check_predictions` refuses nan/inf or exactly constant predictions, so such a member is dropped at
once with its reason instead of poisoning a blend.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from typing import Any

import numpy as np

from jigsaw_kit.core.errors import KitError

log = logging.getLogger(__name__)

DEADLINE_ENV = "JIGSAW_KIT_TRAIN_DEADLINE"
FP16_HINT = (
    "for fp16 try precision: bf16 (on an Ampere+ GPU) or fp32, a lower learning_rate, or (LoRA) keep the trainable "
    "weights in fp32, as the kit does"
)


def train_deadline() -> float | None:
    """The training deadline from JIGSAW_KIT_TRAIN_DEADLINE (unix epoch seconds), or None when unset."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise KitError(
            f"{DEADLINE_ENV}={raw!r} is not a time: set it to unix epoch seconds (e.g. $(( $(date +%s) + 3600 )) "
            "for one hour from now), or unset it for no deadline."
        )
    return value


def _now() -> float:
    return time.time()  # one place for tests to move the clock


def _all_ranks_agree(stop: bool, device: Any) -> bool:
    """True if any rank wants to stop (one tiny all-reduce); the local answer outside DDP."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


@functools.cache
def _callback_classes() -> tuple[type, type]:
    """(DeadlineCallback, NanLossCallback), defined on first use so importing this module imports no torch."""
    from transformers import TrainerCallback

    class DeadlineCallback(TrainerCallback):
        """Ends training (normally: the model is still saved) once time.time() passes `deadline`."""

        def __init__(self, deadline: float | None = None) -> None:
            self.deadline = deadline
            self.stopped_at_step: int | None = None
            self.planned_steps: int | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.planned_steps = int(state.max_steps) if state.max_steps else None

        def on_step_end(self, args, state, control, **kwargs):
            if self.deadline is None or control.should_training_stop:
                return control
            if _all_ranks_agree(_now() >= self.deadline, args.device):
                control.should_training_stop = True
                self.stopped_at_step = int(state.global_step)
                log.warning(
                    "training stopped by its deadline (%s) at step %d of %d; the model trained so far is saved "
                    "and predicts (train_metrics.json: stopped_early)",
                    time.strftime("%H:%M:%S", time.localtime(self.deadline)),
                    state.global_step,
                    state.max_steps,
                )
            return control

        def info(self) -> dict[str, Any]:
            """The train_metrics.json keys: stopped_early, stopped_at_step, planned_steps."""
            stopped = self.stopped_at_step is not None and (self.planned_steps or 0) > self.stopped_at_step
            return {
                "stopped_early": stopped,
                "stopped_at_step": self.stopped_at_step if stopped else None,
                "planned_steps": self.planned_steps,
            }

    class NanLossCallback(TrainerCallback):
        """Raises KitError at the first logged training loss that is nan or inf."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "train_loss"):
                value = (logs or {}).get(key)
                if value is not None and not math.isfinite(float(value)):
                    raise KitError(
                        f"training loss became {value} at step {state.global_step} of {state.max_steps}: the "
                        f"member is dropped; {FP16_HINT}."
                    )
            return control

    return DeadlineCallback, NanLossCallback


def __getattr__(name: str):  # `from jigsaw_kit.methods.guards import DeadlineCallback` works too
    if name in ("DeadlineCallback", "NanLossCallback"):
        return _callback_classes()[name == "NanLossCallback"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def training_guards(deadline: float | None = None) -> list[Any]:
    """[DeadlineCallback, NanLossCallback] for a Trainer; the deadline defaults to JIGSAW_KIT_TRAIN_DEADLINE."""
    deadline_cls, nan_cls = _callback_classes()
    return [deadline_cls(deadline if deadline is not None else train_deadline()), nan_cls()]


def stop_info(guards: list[Any]) -> dict[str, Any]:
    """The deadline's train_metrics.json keys from training_guards' callbacks (not stopped: all but planned empty)."""
    for g in guards:
        if hasattr(g, "info"):
            return g.info()
    return {"stopped_early": False, "stopped_at_step": None, "planned_steps": None}


def check_predictions(preds: Any, what: str = "the member", allow_constant: bool = False) -> np.ndarray:
    """preds as a float array, or a KitError if any is nan/inf or (unless allow_constant) all of more than
    one row are exactly equal.

    Both mean a broken member (fp16 overflow, a collapsed head), never a usable score: drop it with the reason.
    allow_constant is for methods whose constant is a legitimate answer (a per-rule head that saw one class
    scores all its rows alike): then a constant is only logged.
    """
    p = np.asarray(preds, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(p)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise KitError(
            f"{what}: {int(bad.sum())} of {p.size} predictions are not finite ({p[first]} at row {first}); "
            f"the member is dropped. A nan from a GPU member usually means fp16 overflow: {FP16_HINT}."
        )
    if p.size > 1 and bool((p == p[0]).all()):
        if allow_constant:
            log.warning("%s: all %d predictions equal %s: they rank nothing", what, p.size, float(p[0]))
            return p
        raise KitError(
            f"{what}: all {p.size} predictions equal {float(p[0])}, which ranks nothing; the member is dropped. "
            "Check its training log (a collapsed or untrained head, a loss that did not move)."
        )
    return p
