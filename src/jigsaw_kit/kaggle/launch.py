"""The member processes: each planned member is `jigsaw-kit run` in a process of its own, pinned to its GPU(s)
(CUDA_VISIBLE_DEVICES), told its attached checkpoints (JIGSAW_KIT_ATTACHED) and its training deadline, logging to
<working>/jigsaw-kit/<member>.log. run_members starts them, polls them, re-blends as each ends (on_done), drops or
fails on a crash, and stops what still runs at the wall-clock guard.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jigsaw_kit.core.checkpoints import ATTACHED_ENV
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.members import MODEL_KEY, MemberRun, dropped_line

PREDICT_RESERVE_S = 900.0  # at least this long between a member's training deadline and the wall-clock guard


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """`--set key=value` pairs; the model is passed as --model, None means "the config's own value"."""
    args: list[str] = []
    for k, v in overrides.items():
        if k == MODEL_KEY or v is None:
            continue
        value = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        args += ["--set", f"{k}={value}"]
    return args


def member_command(run: MemberRun, data_dir: Path, python: str = sys.executable) -> list[str]:
    """`jigsaw-kit run` for the member; under torchrun over its GPUs when it trains with DDP."""
    cmd = [python, "-m"]
    if run.ddp > 1:  # one process per GPU; `run` shards the prediction and rank 0 writes the submission
        cmd += ["torch.distributed.run", "--standalone", f"--nproc_per_node={run.ddp}", "-m"]
    cmd += ["jigsaw_kit.cli", "run", "--data-dir", str(data_dir), "--config", run.member.config]
    if run.model_dir is not None:
        cmd += ["--model", str(run.model_dir)]
    cmd += ["--run-dir", str(run.run_dir), "--output", str(run.submission)]
    return cmd + set_args(run.overrides)


def member_env(
    base: Mapping[str, str],
    device: str | None,
    threads: int,
    train_deadline: float | None = None,
    attached: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The member's environment: its GPU(s) ("" hides them all from a CPU member), its share of the cores, the
    time (epoch seconds) by which its training stops so that it still predicts and writes (JIGSAW_KIT_TRAIN_DEADLINE,
    read by the trainer's deadline callback), and where its checkpoint names are attached (ATTACHED_ENV)."""
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = device if device is not None else ""
    env["PYTHONUNBUFFERED"] = "1"  # the log shows progress as it happens, not in 8 kB lumps
    if train_deadline is not None:
        env["JIGSAW_KIT_TRAIN_DEADLINE"] = f"{train_deadline:.0f}"
    if attached:
        env[ATTACHED_ENV] = json.dumps(dict(attached))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, str(threads))  # concurrent members would otherwise each start one thread per core
    return env


def train_deadline(run: MemberRun, guard: float | None) -> float | None:
    """When the member's training must stop: the guard less twice its projected prediction time (model loading,
    writing, a slower GPU), at least PREDICT_RESERVE_S; None without a guard."""
    if guard is None:
        return None
    return guard - max(PREDICT_RESERVE_S, 2 * (run.predict_s or 0.0))


def stopped_early(run_dir: Path) -> str:
    """'' or what the member's train_metrics.json says of a training its deadline stopped."""
    try:
        m = json.loads((Path(run_dir) / "train_metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(m, dict) or not m.get("stopped_early"):
        return ""
    return f"STOPPED EARLY by its deadline at step {m.get('stopped_at_step')} of {m.get('planned_steps')}"


def _last_line(path: Path, n: int = 1) -> list[str]:
    try:
        text = path.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return []
    # Progress bars redraw with \r: keep what a terminal would show.
    lines = [x.rsplit("\r", 1)[-1] for x in text.splitlines()]
    return [x for x in lines if x.strip()][-n:]


def _stop(run: MemberRun) -> None:
    p = run.process
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)  # its own session (start_new_session): its workers go with it
        p.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class _Fleet:
    """The processes of one run_members call: what runs (pending), what waits for another to end, and their fates."""

    data_dir: Path
    out: Callable[[str], None]
    keep_going: bool
    deadline: float | None
    on_done: Callable[[MemberRun], None] | None
    threads: int
    tail: int
    pending: list[MemberRun] = field(default_factory=list)
    waiting: list[MemberRun] = field(default_factory=list)
    t0: float = field(default_factory=time.time)

    def start(self, r: MemberRun) -> None:
        if r.run_dir.exists():  # a rerun of this cell in a session: start clean, the notebook owns this folder
            shutil.rmtree(r.run_dir)
        r.run_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = member_command(r, self.data_dir)
        wait = f" (after {r.after})" if r.after else ""
        self.out(f"[{r.member.name}] {r.where}{wait}: $ {' '.join(cmd)}")
        env = member_env(os.environ, r.device, self.threads, train_deadline(r, self.deadline), r.attached)
        with open(r.log, "w", encoding="utf-8") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            r.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pending.append(r)

    def wait(self, poll_s: float) -> bool:
        """Sleep until poll_s has passed, a member has ended or the deadline has come; True once it has."""
        wake = time.time() + poll_s
        while time.time() < wake and all(r.process.poll() is None for r in self.pending):
            if self.deadline is not None and time.time() >= self.deadline:
                break
            time.sleep(min(1.0, poll_s))
        return self.deadline is not None and time.time() >= self.deadline

    def fail(self, r: MemberRun, reason: str, detail: str = "") -> None:
        r.status, r.reason = "failed", reason
        if not self.keep_going:
            what = f"member {r.member.name} ({r.member.config}, {r.where})"
            raise KitError(f"{what} {reason}; the other members were stopped.{detail}")
        self.out("!" * 100)
        self.out(dropped_line(r) + detail)

    def ended(self, r: MemberRun, rc: int) -> None:
        """r's process ended with rc: start what waited for it, then mark it failed, or done and blended."""
        self.pending.remove(r)
        for w in [w for w in self.waiting if w.after == r.member.name]:  # one after another on a small card
            self.waiting.remove(w)
            self.start(w)
        lines = "\n".join(f"  | {x}" for x in _last_line(r.log, self.tail))
        elapsed = f"{time.time() - self.t0:.0f} s"
        if rc != 0:
            self.fail(r, f"failed with exit status {rc} after {elapsed}", f" Last lines of {r.log}:\n{lines}")
            return
        self.out(f"[{r.member.name}] done in {elapsed} -> {r.submission}; last lines of {r.log}:")
        self.out(lines)
        r.status, r.stopped_early = "done", stopped_early(r.run_dir)
        if r.stopped_early:
            self.out(f"[{r.member.name}] {r.stopped_early}; its predictions are blended all the same")
        if self.on_done is None:
            return
        try:
            self.on_done(r)
        except Exception as e:  # noqa: BLE001  on the rerun any failure only drops this member
            if not self.keep_going:
                raise
            self.fail(r, f"its submission could not be blended ({type(e).__name__}: {e})")
            try:
                self.on_done(r)  # blend again without it
            except Exception as again:  # noqa: BLE001  the last good submission.csv stays
                self.out(f"re-blend without {r.member.name} failed too ({again}); submission.csv unchanged")


def run_members(
    runs: Sequence[MemberRun],
    data_dir: Path,
    poll_s: float = 60.0,
    tail: int = 15,
    out: Callable[[str], None] = print,
    *,
    keep_going: bool = False,
    deadline: float | None = None,
    on_done: Callable[[MemberRun], None] | None = None,
    stagger_s: float = 0.0,
) -> None:
    """Start every member at once, print each one's latest log line every poll_s, and its tail when it ends;
    on_done(run) after each success (the re-blend).

    A member that fails (or whose on_done fails) stops the others and raises with its log tail, unless
    keep_going: then it is marked failed, a DROPPED line says why, and the others go on. At `deadline`
    (time.time() seconds) whatever still runs is stopped and dropped; without keep_going that raises too.
    Members start stagger_s apart, so that their model loading and tokenising do not all peak in RAM at once.
    """
    threads = max(1, (os.cpu_count() or 1) // max(1, len(runs)))
    fleet = _Fleet(Path(data_dir), out, keep_going, deadline, on_done, threads, tail)
    names = {r.member.name for r in runs}
    fleet.waiting = [r for r in runs if r.after in names]
    try:
        for i, r in enumerate([r for r in runs if r not in fleet.waiting]):
            if i and stagger_s > 0:
                time.sleep(stagger_s)
            fleet.start(r)
        fleet.t0 = time.time()
        while fleet.pending:
            late = fleet.wait(poll_s)
            for r in list(fleet.pending):
                rc = r.process.poll()
                if rc is not None:
                    fleet.ended(r, rc)
                elif not late:
                    last = _last_line(r.log)
                    out(f"[{r.member.name}] running {time.time() - fleet.t0:.0f} s: {last[0][-160:] if last else ''}")
            if late and (fleet.pending or fleet.waiting):
                _guard([*fleet.pending, *fleet.waiting], time.time() - fleet.t0, keep_going, out)
                fleet.pending, fleet.waiting = [], []
    finally:
        for r in runs:
            if r.process is not None:
                _stop(r)


def _guard(pending: Sequence[MemberRun], elapsed: float, keep_going: bool, out: Callable[[str], None]) -> None:
    """The wall-clock guard fired: stop what still runs, mark it dropped; raise unless keep_going."""
    for r in pending:
        _stop(r)
        r.status = "dropped"
        r.reason = (
            f"stopped by the wall-clock guard after {elapsed:.0f} s (it would overrun Kaggle's limit); "
            "the best finished blend stays"
        )
    if not keep_going:
        names = ", ".join(r.member.name for r in pending)
        raise KitError(
            f"the wall-clock guard stopped {names} after {elapsed:.0f} s; submission.csv holds the best "
            "finished blend. Cut the members (fewer epochs, smaller models) or raise JIGSAW_KIT_GUARD_HOURS."
        )
    for r in pending:
        tail = "\n".join(f"  | {x}" for x in _last_line(r.log, 3))
        out("!" * 100)
        out(f"{dropped_line(r)} Last lines of {r.log}:\n{tail}")
