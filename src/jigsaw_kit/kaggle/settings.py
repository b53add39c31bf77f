"""The notebook's settings (every knob, from the notebook's cells and JIGSAW_KIT_* variables) and its stage log."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.budget import DEFAULT_BUDGET_HOURS, hms
from jigsaw_kit.kaggle.members import DEFAULT_MEMBERS, PREVIEW_STEPS, Member, members_from_env, parse_members
from jigsaw_kit.kaggle.safety_net import FAILURE_POLICIES, env_flag, keeps_going


def _env_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise KitError(f"environment variable {key}={raw!r} must be a number.") from None


FAST_MEMBER = "tfidf-lr"  # seconds on the public files, about a minute on the hidden test: submission.csv first
GUARD_HOURS = 11.5  # of Kaggle's 12 h: stop the members and keep the best finished blend
MIN_CAPABILITY = 7.0  # the T4 is sm_75; the image's torch dropped sm_60 (P100)
KIT_START_S = 60.0  # a member process's own start: imports, the dataset built again, saving


@dataclass(frozen=True)
class NotebookSettings:
    """Every knob of the notebook; env vars exist for the rehearsal and for runs without editing the notebook."""

    members: tuple[Member, ...] = parse_members([("kaggle-t4", {}, 1.0)])
    input_root: Path = Path("/kaggle/input")
    working: Path = Path("/kaggle/working")
    budget_hours: float = DEFAULT_BUDGET_HOURS
    probe_steps: int = 20  # training steps timed before the real run; 0: use ASSUMED_T4
    probe_rows: int = 1024  # rows predicted to time inference
    max_steps: int | None = None  # smoke runs only (the rehearsal); None: the config decides
    rerun: bool = False  # KAGGLE_IS_COMPETITION_RERUN: Kaggle scoring the hidden test
    full_on_preview: bool = False  # run the full recipe on "Save Version"'s 10-row preview too
    preview_steps: int = PREVIEW_STEPS
    poll_s: float = 120.0  # how often the train stage prints each running member's latest log line
    stagger_s: float = 30.0  # between member starts: their loading and tokenising peaks do not coincide in RAM
    fast_member: str | None = FAST_MEMBER  # runs alone first and writes submission.csv; None: none
    fast_member_s: float = 120.0  # its time, counted before the plan: the first cell's TF-IDF time + the kit's start
    guard_hours: float = GUARD_HOURS  # after the notebook's start, running members are stopped
    on_failure: str = "auto"  # auto: drop failing members on the hidden rerun, fail elsewhere; drop; fail
    run_type: str = ""  # KAGGLE_KERNEL_RUN_TYPE: "Interactive" in the editor, "Batch" for saved versions
    auto: tuple[str, ...] = ()  # MEMBERS = "auto": what was found under input_root (discover.describe)
    unusable: tuple[tuple[str, str], ...] = ()  # (folder, why) of attached checkpoints that cannot be read
    broken: tuple[tuple[str, str], ...] = ()  # (module, why) the install cell's import check could not import
    gpu_refused: str = ""  # why the GPUs cannot be used (a P100 under the image's torch); GPU members are dropped
    bf16: bool = False  # every GPU has fast bf16 (sm_80+): fp16 configs run bf16 there
    gpu_bytes: tuple[tuple[str, int], ...] = ()  # (GPU id, its memory) from nvidia-smi: packing members by memory

    @classmethod
    def from_env(
        cls,
        config: str | None = None,
        overrides: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        members: Any = None,
        full_on_preview: bool = False,
        stack: Mapping[str, str | None] | None = None,
        safety_net_s: float | None = None,
    ) -> NotebookSettings:
        """members (the notebook's MEMBERS: a list, or "auto" for one member per attached checkpoint) or one
        config + overrides; JIGSAW_KIT_CONFIG (one member) or JIGSAW_KIT_MEMBERS ("cfg[:weight],..." or "auto")
        replace them. stack: the install cell's import check ({module: None or why it failed}); safety_net_s: how
        long the first cell's TF-IDF took (the fast member runs the same recipe on the same data). Long because it
        reads every JIGSAW_KIT_* variable in one place, next to the field it sets."""
        env = os.environ if env is None else env
        steps = env.get("JIGSAW_KIT_MAX_STEPS", "").strip()
        input_root = Path(env.get("JIGSAW_KIT_KAGGLE_INPUT", "").strip() or "/kaggle/input")
        auto: tuple[str, ...] = ()
        unusable: tuple[tuple[str, str], ...] = ()
        if env.get("JIGSAW_KIT_CONFIG", "").strip():
            chosen = parse_members([(env["JIGSAW_KIT_CONFIG"].strip(), dict(overrides or {}), 1.0)])
        elif env.get("JIGSAW_KIT_MEMBERS", "").strip() and env["JIGSAW_KIT_MEMBERS"].strip().lower() != "auto":
            chosen = members_from_env(env["JIGSAW_KIT_MEMBERS"])
        elif env.get("JIGSAW_KIT_MEMBERS", "").strip() or (isinstance(members, str) and members.lower() == "auto"):
            from jigsaw_kit.kaggle import discover

            chosen, found, why = discover.auto_members(input_root)
            auto = tuple(discover.describe(found, chosen, why, input_root))
            unusable = tuple((str(f.path), f.why) for f in found if f.unusable)
        elif members is not None:
            chosen = parse_members(members)
        elif config is not None:
            chosen = parse_members([(config, dict(overrides or {}), 1.0)])
        else:
            chosen = parse_members(DEFAULT_MEMBERS)
        fast = env.get("JIGSAW_KIT_FAST_MEMBER", FAST_MEMBER).strip() or FAST_MEMBER
        on_failure = env.get("JIGSAW_KIT_ON_FAILURE", "").strip().lower() or "auto"
        if on_failure not in FAILURE_POLICIES:
            raise KitError(f"JIGSAW_KIT_ON_FAILURE={on_failure!r}: choose one of {', '.join(FAILURE_POLICIES)}.")
        return cls(
            members=chosen,
            input_root=input_root,
            working=Path(env.get("JIGSAW_KIT_KAGGLE_WORKING", "").strip() or "/kaggle/working"),
            budget_hours=_env_float(env, "JIGSAW_KIT_BUDGET_HOURS", DEFAULT_BUDGET_HOURS),
            probe_steps=int(_env_float(env, "JIGSAW_KIT_PROBE_STEPS", 20)),
            probe_rows=int(_env_float(env, "JIGSAW_KIT_PROBE_ROWS", 1024)),
            max_steps=int(steps) if steps else None,
            rerun=env_flag(env, "KAGGLE_IS_COMPETITION_RERUN"),
            full_on_preview=full_on_preview or env_flag(env, "JIGSAW_KIT_FULL_PREVIEW"),
            preview_steps=int(_env_float(env, "JIGSAW_KIT_PREVIEW_STEPS", PREVIEW_STEPS)),
            poll_s=_env_float(env, "JIGSAW_KIT_POLL_S", 120.0),
            stagger_s=_env_float(env, "JIGSAW_KIT_STAGGER_S", 30.0),
            fast_member=None if fast.lower() in ("none", "off", "0") else fast,
            guard_hours=_env_float(env, "JIGSAW_KIT_GUARD_HOURS", GUARD_HOURS),
            on_failure=on_failure,
            run_type=env.get("KAGGLE_KERNEL_RUN_TYPE", "").strip(),
            auto=auto,
            unusable=unusable,
            broken=tuple((m, why) for m, why in (stack or {}).items() if why),
            fast_member_s=KIT_START_S + safety_net_s if safety_net_s is not None else cls.fast_member_s,
        )

    @property
    def config(self) -> str:
        return self.members[0].config

    @property
    def overrides(self) -> dict[str, Any]:
        return self.members[0].overrides

    @property
    def run_root(self) -> Path:
        return self.working / "jigsaw-kit"

    @property
    def submission(self) -> Path:
        return self.working / "submission.csv"

    def describe(self) -> str:
        """The settings cell's printout: the members and where they came from, the budget, the safety nets."""
        lines = list(self.auto) or [
            "MEMBERS: " + ", ".join(f"{m.name} ({m.config}, weight {m.weight:g})" for m in self.members)
        ]
        fast = f"{self.fast_member} runs first and writes submission.csv" if self.fast_member else "no fast member"
        lines += [
            f"budget {self.budget_hours:g} h (the plan cuts or drops members to fit); wall-clock guard at "
            f"{self.guard_hours:g} h after the start (running members stopped, the best finished blend kept)",
            f"{fast}; on a member's failure: {self.on_failure} (auto: drop it on the hidden rerun, fail elsewhere)",
            f"input {self.input_root}, working {self.working}, rerun {self.rerun}, run type {self.run_type or '?'}",
        ]
        lines += [f"cannot import {m}: {why} (members that need it are dropped)" for m, why in self.broken]
        return "\n".join(lines)

    def with_accelerator(self, gpus: list[str], cards: list[tuple[str, str, float, int]] | None) -> tuple[
        NotebookSettings, list[str]
    ]:
        """The GPUs the members may use, by what `nvidia-smi` says of each card (cards: (index, name, compute
        capability, memory bytes); None: unknown). The image's torch no longer runs on a P100 (sm_60;
        Kaggle/docker-python 82c5c43): refused at start with the fix, or on the hidden rerun its GPU members dropped
        and the rest on the CPU. Cards that all have fast bf16 (sm_80+) run fp16 configs in bf16."""
        mine = [c for c in (cards or []) if c[0] in gpus] if gpus else []
        old = [f"GPU {c[0]} {c[1]} (sm_{c[2] * 10:.0f})" for c in mine if c[2] < MIN_CAPABILITY]
        if old:
            why = (
                f"{', '.join(old)}: Kaggle's image ships a torch that no longer runs on cards older than sm_"
                f"{MIN_CAPABILITY * 10:.0f} (Kaggle/docker-python 82c5c43, 2026-03-19). In the notebook's settings, "
                "Accelerator -> GPU T4 x2"
            )
            keep_going = keeps_going(self.rerun, None, self.run_type, self.on_failure)
            if not keep_going:
                raise KitError(why + ".")
            print(f"FALLBACK: {why}; members that need a GPU are dropped, the others run on the CPU")
            return dataclasses.replace(self, gpu_refused=why), []
        bf16 = bool(mine) and len(mine) == len(gpus) and all(c[2] >= 8.0 for c in mine)
        return dataclasses.replace(self, bf16=bf16, gpu_bytes=tuple((c[0], c[3]) for c in mine)), gpus


class StageLog:
    """Prints each stage's start, end, duration and the time since the notebook started."""

    def __init__(self, start: float | None = None, out: Callable[[str], None] = print) -> None:
        self.start = time.time() if start is None else start
        self.out = out
        self.durations: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.time() - self.start

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.time()
        self.out(f"[{time.strftime('%H:%M:%S')}] >> {name} (notebook elapsed {hms(self.elapsed())})")
        yield
        self.durations[name] = time.time() - t
        self.out(
            f"[{time.strftime('%H:%M:%S')}] << {name} done in {hms(self.durations[name])} "
            f"(notebook elapsed {hms(self.elapsed())})"
        )

    def summary(self) -> str:
        parts = [f"{k} {hms(v)}" for k, v in self.durations.items()]
        return f"stages: {', '.join(parts)}; total {hms(self.elapsed())}"
