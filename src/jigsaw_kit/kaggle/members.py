"""Several members, one process each, blended per rule: the notebook's ensemble, as data.

MEMBERS parsed into Members; the GPUs seen and who gets which; the preview decision; MemberRun, one member as
planned (stages.py) and run (launch.py: its `jigsaw-kit run` process); the plan table; and the blend: whenever
one finishes, what has finished is rank-blended within each rule with their weights (evaluate.blend) into
<working>/submission.csv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS
from jigsaw_kit.kaggle.safety_net import PREVIEW_MAX_TEST_ROWS

if TYPE_CHECKING:  # annotations only: keep pandas out of `jigsaw-kit --help`
    from jigsaw_kit.data.dataset import Processed

# The notebook's default. Equal weights are a placeholder until measured: choose them on the leaderboard-like CV
# (`jigsaw-kit cv --scheme lb-proxy` for each config, then `jigsaw-kit blend --oof A B --weights ...`).
DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any], float], ...] = (("kaggle-t4", {}, 1.0), ("cpu-contrastive", {}, 1.0))


PREVIEW_STEPS = 5  # a fine-tune's training steps on the preview: enough to prove the path end to end
MODEL_KEY = "model"  # the key `--model` sets: a member's checkpoint travels as --model, never as --set


@dataclass(frozen=True)
class Member:
    name: str  # unique; names the run dir, the log and the member's submission
    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    recipe: str = ""  # its entry in evidence.py; "" = the config's own

    @property
    def evidence_key(self) -> str:
        return self.recipe or self.config


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).stem if name.endswith((".yaml", ".yml")) else name).strip("-")


def parse_members(spec: Sequence[Any]) -> tuple[Member, ...]:
    """MEMBERS entries -- "config", (config,), (config, overrides) or (config, overrides, weight) -- checked."""
    if isinstance(spec, (str, bytes)) or not spec:
        raise KitError(f'MEMBERS must be a non-empty list like [("kaggle-t4", {{}}, 1.0)], got {spec!r}.')
    out: list[Member] = []
    seen: dict[str, int] = {}
    for entry in spec:
        parts = (entry,) if isinstance(entry, str) else tuple(entry)
        if not 1 <= len(parts) <= 3 or not isinstance(parts[0], str) or not parts[0].strip():
            raise KitError(
                f'a MEMBERS entry must be (config, overrides, weight), e.g. ("cpu-hybrid", {{}}, 1.0); got {entry!r}.'
            )
        config = parts[0].strip()
        overrides = parts[1] if len(parts) > 1 else {}
        weight = parts[2] if len(parts) > 2 else 1.0
        if not isinstance(overrides, Mapping):
            raise KitError(f"MEMBERS entry {entry!r}: overrides must be a dict of config keys, e.g. {{'epochs': 2}}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise KitError(f"MEMBERS entry {entry!r}: the weight must be a number > 0 (drop the member instead of 0).")
        base = _safe(config) or "member"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"  # the same config twice, e.g. two seeds
        out.append(Member(name, config, dict(overrides), float(weight)))
    return tuple(out)


def members_from_env(value: str) -> tuple[Member, ...]:
    """JIGSAW_KIT_MEMBERS="kaggle-t4:2,cpu-hybrid:1" (config[:weight], comma-separated; no overrides)."""
    spec = []
    for item in (x.strip() for x in value.split(",")):
        if not item:
            continue
        config, _, weight = item.partition(":")
        try:
            spec.append((config, {}, float(weight) if weight.strip() else 1.0))
        except ValueError:
            raise KitError(f"JIGSAW_KIT_MEMBERS item {item!r}: expected config[:weight], e.g. cpu-hybrid:1.") from None
    return parse_members(spec)


def visible_gpus(cuda_at_start: str | None, nvidia_smi: Callable[[], str | None] | None = None) -> list[str]:
    """GPU ids the members may use, found without initialising CUDA in the notebook process.

    cuda_at_start is CUDA_VISIBLE_DEVICES as it was before the notebook pinned its own process to "0": when
    it was set, its ids are the machine's offer ("" or "-1": none); else `nvidia-smi -L` counts the GPUs.
    """
    if cuda_at_start is not None:
        ids = [x.strip() for x in cuda_at_start.split(",") if x.strip()]
        return [] if ids[:1] == ["-1"] else ids
    listing = (nvidia_smi or _nvidia_smi_listing)()
    if not listing:
        return []
    return [str(i) for i, _ in enumerate(x for x in listing.splitlines() if x.startswith("GPU "))]


def gpu_cards(query: Callable[[], str | None] | None = None) -> list[tuple[str, str, float, int]] | None:
    """(index, name, compute capability, memory in bytes) of each GPU from `nvidia-smi` (CUDA stays cold); None:
    nvidia-smi is missing or too old to report compute_cap."""
    text = (query or _nvidia_smi_cards)()
    if text is None:
        return None
    cards = []
    for line in text.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        try:
            cards.append((parts[0], parts[1], float(parts[2]), int(float(parts[3].split()[0]) * 2**20)))
        except (IndexError, ValueError):
            return None
    return cards


def _nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output for these arguments, or None when it is missing or fails (CUDA stays cold)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _nvidia_smi_cards() -> str | None:
    return _nvidia_smi("--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader,nounits")


def _nvidia_smi_listing() -> str | None:
    return _nvidia_smi("-L")


def assign_devices(uses: Sequence[str], gpus: Sequence[str]) -> list[str | None]:
    """A GPU id (or None: CPU) per member, from each member's method's `gpu` (methods.base.Method).

    A fine-tune needs a GPU; the hybrid only embeds each text once (MiniLM inference, a few hundred MB),
    which a GPU makes seconds instead of minutes on Kaggle's 4 cores; TF-IDF never touches one.

    Fine-tunes ("needs") go round-robin over the GPUs first, so each gets its own while there are enough.
    A member that can use a GPU ("optional": the hybrid's embedding pass) then takes the least loaded one:
    with the default (one fine-tune, two T4s) it gets the second GPU to itself; when it must share, its
    short inference pass costs a fine-tune little, whereas embedding on Kaggle's 4 CPU cores would take
    far longer and compete with the fine-tunes' own CPU work. "none" (TF-IDF) runs on the CPU.
    """
    devices: list[str | None] = [None] * len(uses)
    load = {g: 0 for g in gpus}
    if not gpus:
        return devices
    needs = [i for i, u in enumerate(uses) if u == "needs"]
    for k, i in enumerate(needs):
        devices[i] = gpus[k % len(gpus)]
        load[devices[i]] += 1
    for i, u in enumerate(uses):
        if u == "optional":
            g = min(gpus, key=lambda x: load[x])  # min keeps the first of equally loaded GPUs
            devices[i] = g
            load[g] += 1
    return devices


def is_preview(test_rows: int, rerun: bool, full_on_preview: bool = False) -> bool:
    """True on "Save Version"'s run over the public 10-row test.csv: a smoke run, the full recipe on the rerun.

    rerun: KAGGLE_IS_COMPETITION_RERUN is set. Both signals must say "preview", so should Kaggle's flag
    ever be missing, the hidden test (HIDDEN_TEST_ROWS) still gets the full run.
    """
    return not rerun and not full_on_preview and test_rows < PREVIEW_MAX_TEST_ROWS


def preview_banner(test_rows: int, steps: int) -> str:
    bar = "=" * 100
    return (
        f"{bar}\nPREVIEW RUN: test.csv has {test_rows:,} rows and this is not the competition rerun: the smoke run\n"
        f"of 'Save Version'. Fine-tunes train {steps} steps, no probe. The submission written below is valid but\n"
        f"NOT the recipe's quality. The full recipe runs on the rerun over the hidden test\n"
        f"({HIDDEN_TEST_ROWS:,} rows) after 'Submit'. For a full trial run now: FULL_RUN_ON_PREVIEW = True\n"
        "(or JIGSAW_KIT_FULL_PREVIEW=1).\n"
        f"{bar}"
    )


@dataclass
class MemberRun:
    """One member, planned: where it runs and exactly what it is told."""

    member: Member
    method: str
    device: str | None  # GPU id, or None: CPU
    model_dir: Path | None  # the attached checkpoint folder (None: the method needs none)
    overrides: dict[str, Any]  # the member's overrides + smoke/preview steps + the plan's cuts
    run_dir: Path
    note: str = ""  # the plan's one-line summary (projection, or why there is none)
    first: bool = False  # runs alone before the others start: the fast member that writes submission.csv first
    blend: bool = True  # False: a safety net, in the blend only while no blended member has finished
    status: str = "planned"  # planned -> done | failed | dropped
    reason: str = ""  # why it failed or was dropped
    after: str | None = None  # starts when this member ends (their probes' memory does not fit one card together)
    ddp: int = 1  # > 1: trains with DDP over that many GPUs (torchrun), its prediction sharded (the lone fine-tune)
    predict_s: float | None = None  # the plan's projected prediction time: its training deadline leaves room for it
    stopped_early: str = ""  # what train_metrics.json says when its deadline stopped the training
    attached: dict[str, str] = field(default_factory=dict)  # {checkpoint name: attached folder} its process resolves
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.run_dir.parent / f"{self.member.name}.log"

    @property
    def submission(self) -> Path:
        return self.run_dir / "submission.csv"

    @property
    def where(self) -> str:
        if self.device is None:
            return "CPU"
        return f"GPUs {self.device} (DDP)" if self.ddp > 1 else f"GPU {self.device}"


def dropped_line(run: MemberRun) -> str:
    """The loud line for a member left out: the rerun's log must say what the score is missing, and why."""
    return f"DROPPED: {run.member.name} ({run.member.config}, {run.where}): {run.reason}"


def format_plan(runs: Sequence[MemberRun], gpus: Sequence[str], evidence: Callable[[str], str] | None = None) -> str:
    """The plan table: each member's weight and share, where it runs, its projection, and (evidence) what its
    weight rests on; members left out get their DROPPED line."""
    live = [r for r in runs if r.status in ("planned", "done")]
    total = sum(r.member.weight for r in live if r.blend) or 1.0
    seen = ", ".join(gpus) if gpus else "none (all members on the CPU)"
    head = f"members ({len(live)}" + (f", {len(runs) - len(live)} dropped" if len(live) < len(runs) else "")
    lines = [f"{head}), GPUs seen: {seen}"]
    width = max((len(r.member.name) for r in live), default=0)
    for r in live:
        share = f"{r.member.weight:g} ({r.member.weight / total:.0%})" if r.blend else "safety net"
        lines.append(f"  {r.member.name:<{width}}  weight {share:<10} -> {r.where:<6} {r.note}")
        if evidence is not None:
            lines.append(f"  {'':<{width}}  evidence: {evidence(r.member.evidence_key)}")
    lines += [dropped_line(r) for r in runs if r not in live]
    return "\n".join(lines)


def blend_members(runs: Sequence[MemberRun], processed: Processed, output: Path) -> Path:
    """The members' submissions rank-blended within each rule with their weights, checked, written atomically.

    A single member's submission is copied as it is (its probabilities, not ranks: the same AUC, easier to read).
    """
    import pandas as pd

    from jigsaw_kit.core.atomic import write_csv
    from jigsaw_kit.data.submission import check_submission
    from jigsaw_kit.evaluate.blend import blend_submissions

    missing = [str(r.submission) for r in runs if not r.submission.is_file()]
    if missing:
        raise KitError(f"member submission(s) missing: {', '.join(missing)}; see the members' logs beside them.")
    sample = processed.sample_submission
    if len(runs) == 1:
        sub = pd.read_csv(runs[0].submission)
    else:
        test = processed.test[["row_id", "rule"]].drop_duplicates("row_id")
        sub = blend_submissions([r.submission for r in runs], test, [r.member.weight for r in runs])
        sub = sub.set_index("row_id").loc[sample["row_id"].astype("int64")].reset_index()
    check_submission(sub, sample)
    write_csv(sub, output)
    return output
