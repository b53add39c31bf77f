"""The notebook's stages 2-4: plan the members, train them, blend them. Always a submission.csv on the rerun.

    plan_members    every member's checkpoints verified and the output folders checked before anything starts;
                    a GPU per member; on the preview a smoke run, else a probe per fine-tune and the budget,
                    which cuts, then drops members, weakest evidence (evidence.py) first
    train_members   the fast member (tfidf-lr) alone first: its checked submission.csv is on disk in a minute;
                    then the others at once, each re-blending what has finished into submission.csv as it ends;
                    a wall-clock guard stops what still runs before Kaggle's 12 h
    submit_members  the final blend of what finished, and what was left out

Kaggle scores only the hidden rerun, which nobody watches: there (drops_failures) a member that fails, cannot
be read or would overrun is dropped with a loud `DROPPED:` line and the others are blended. On the preview and
interactive runs the same failure fails the notebook, so the user sees it before spending a submission.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.facts import HIDDEN_TEST_ROWS
from jigsaw_kit.kaggle import evidence
from jigsaw_kit.kaggle.attached import BASE_ENCODER, attached_for, find_base_encoder, member_overrides
from jigsaw_kit.kaggle.budget import (
    Contender,
    choose_within_budget,
    ddp_speed,
    gpu_shares,
    hms,
    pack_by_memory,
    plan_overrides,
    shared,
)
from jigsaw_kit.kaggle.bundling import slug
from jigsaw_kit.kaggle.launch import run_members
from jigsaw_kit.kaggle.members import (
    MODEL_KEY,
    Member,
    MemberRun,
    assign_devices,
    blend_members,
    dropped_line,
    format_plan,
    is_preview,
    preview_banner,
)
from jigsaw_kit.kaggle.notebook import check_outputs
from jigsaw_kit.kaggle.probe import measure_run, plan_budget, release_gpu, report_plan, run_workload
from jigsaw_kit.kaggle.safety_net import keeps_going
from jigsaw_kit.kaggle.settings import NotebookSettings, StageLog
from jigsaw_kit.kaggle.wheels import MODEL_DATASET_PREFIX
from jigsaw_kit.methods import method_class

if TYPE_CHECKING:
    from jigsaw_kit.core.config import Config
    from jigsaw_kit.data.dataset import Processed


class Checked(NamedTuple):
    """A member that passed the checks: the config its process will load, what it is told, where its checkpoints
    are attached; first/blend: the fast member runs alone first, a safety net stays out of the blend."""

    member: Member
    cfg: Config
    overrides: dict[str, Any]
    attached: dict[str, str]
    first: bool = False
    blend: bool = True


def drops_failures(settings: NotebookSettings, test_rows: int) -> bool:
    """True where a failing member is dropped rather than failing the notebook: the hidden rerun (safety_net.py's
    policy, which the notebook's first cell follows too)."""
    return keeps_going(settings.rerun, test_rows, settings.run_type, settings.on_failure)


def _policy(keep_going: bool) -> str:
    if keep_going:
        return (
            "on failure: DROP the member and blend the others (the hidden rerun: a lost score costs the day's "
            "submission)"
        )
    return "on failure: FAIL the notebook (preview / interactive: see it before spending a submission)"


def verify_inputs(cfg: Config, attached: Mapping[str, str] | None = None) -> None:
    """Every checkpoint the member will load, resolved (attached: where the notebook found its names) and verified
    (sizes, headers; sha256 where recorded)."""
    from jigsaw_kit import pipeline
    from jigsaw_kit.core import checkpoints

    with checkpoints.attached(attached or {}):
        pipeline.check_inputs(cfg)
        for name in method_class(cfg.method).checkpoints(cfg):
            checkpoints.verify_checkpoint(checkpoints.resolve_model(name), deep=True)


def _shown(model: Path) -> str:
    """A checkpoint folder as the plan shows it: a Kaggle Model's version folder ("1") says nothing alone."""
    return model.name if not model.name.isdigit() else "/".join(model.parts[-4:])


def _dropped(m: Member, settings: NotebookSettings, reason: str, method: str = "?") -> MemberRun:
    return MemberRun(m, method, None, None, {}, settings.run_root / m.name, status="dropped", reason=reason)


def _drop_or_raise(keep_going: bool, run: MemberRun) -> MemberRun:
    if not keep_going:
        raise KitError(f"member {run.member.name} ({run.member.config}): {run.reason}")
    print(dropped_line(run))
    return run


def _checked(settings: NotebookSettings, keep_going: bool) -> tuple[list[Checked], list[MemberRun]]:
    """The usable members, and the dropped ones; raises instead of dropping unless keep_going."""
    from jigsaw_kit.core.config import load_config

    base = find_base_encoder(settings.input_root)
    ok: list[Checked] = []
    dropped: list[MemberRun] = []
    for folder, why in settings.unusable:
        if not keep_going:
            raise KitError(f"attached checkpoint {folder}: {why}")
        print(f"DROPPED: the attached checkpoint {folder}: {why}")
    broken = dict(settings.broken)
    for m in settings.members:
        method = "?"
        try:
            cfg = load_config(m.config, m.overrides)  # checked before its checkpoints: it never loads them
            method = cfg.method
            cls = method_class(cfg.method)
            cant = [f"{mod} ({broken[mod]})" for mod in cls.imports(cfg) if mod in broken]
            if cant:
                why = f"its stack cannot import: {'; '.join(cant)} (see the install cell)"
                dropped.append(_drop_or_raise(keep_going, _dropped(m, settings, why, method)))
                continue
            if cls.gpu == "needs" and settings.gpu_refused:
                raise KitError(settings.gpu_refused)
            overrides = member_overrides(m, settings, base)
            cfg = load_config(m.config, overrides)
            found = attached_for(cfg, settings)
            verify_inputs(cfg, found)
        except KitError as e:
            dropped.append(_drop_or_raise(keep_going, _dropped(m, settings, f"unusable input: {e}", method)))
            continue
        ok.append(Checked(m, cfg, overrides, found))
    if not ok and not settings.fast_member:
        raise KitError("no usable member: see the DROPPED lines above.")
    if any(method_class(c.cfg.method).fine_tunes and MODEL_KEY not in c.member.overrides for c in ok):
        print(
            f"fine-tune encoder: {BASE_ENCODER} (attached at {base})"
            if base is not None
            else f"fine-tune encoder: the config's (no {MODEL_DATASET_PREFIX}{slug(BASE_ENCODER)} dataset attached; "
            f"attach it to fine-tune {BASE_ENCODER} instead of all-MiniLM-L6-v2)"
        )
    return ok, dropped


def _with_fast_member(ok: list[Checked], settings: NotebookSettings) -> list[Checked]:
    """The fast member first; added as a safety net (not blended) when the members do not include it (blend
    cpu-hybrid + tfidf-lr read 0.853 on lb-proxy, below cpu-hybrid's 0.856)."""
    from jigsaw_kit.core.config import load_config

    fast = settings.fast_member
    if not fast:
        return ok
    i = next((i for i, c in enumerate(ok) if c.member.config == fast), None)
    if i is not None:
        return [ok[i]._replace(first=True)] + [c for j, c in enumerate(ok) if j != i]
    name = fast if all(c.member.name != fast for c in ok) else f"{fast}-safety-net"
    cfg = load_config(fast)
    try:
        found = attached_for(cfg, settings)
    except KitError:  # not checked, as a member is: its process says what is missing
        found = {}
    return [Checked(Member(name, fast, {}, 1.0, fast), cfg, {}, found, first=True, blend=False), *ok]


def process_config(run: MemberRun) -> Config:
    """The config the member's process will load: its config file, its --set overrides and its --model."""
    from jigsaw_kit.core.config import load_config

    model = {MODEL_KEY: str(run.model_dir)} if run.model_dir is not None else {}
    return load_config(run.member.config, {**run.overrides, **model})


def _member_run(c: Checked, device: str | None, gpus: list[str], ddp: int, settings: NotebookSettings) -> MemberRun:
    """The member as its process will be told it: where it runs, what the device imposes, its --model (the folder
    of the checkpoint it loads first)."""
    cls = method_class(c.cfg.method)
    forced, why = cls.device_overrides(c.cfg, bool(gpus), settings.bf16)
    names = cls.checkpoints(c.cfg)
    model = Path(c.attached.get(names[0], names[0])) if names else None
    where = settings.run_root / c.member.name
    run = MemberRun(c.member, c.cfg.method, device, model, {**c.overrides, **forced}, where, first=c.first)
    run.blend, run.attached = c.blend, dict(c.attached)
    run.note = f"; {why}" if why else ""  # the plan's note goes in front
    if ddp > 1 and cls.gpu == "needs":
        run.device, run.ddp = ",".join(gpus), ddp
    return run


def _one_pass_note(run: MemberRun, cfg: Config, preview: bool, settings: NotebookSettings) -> None:
    """A method fitted in one pass: no probe; its note says so, with its short tune's steps (cut on the preview)."""
    cls = method_class(cfg.method)
    note = f"method {cls.title(cfg)}: no epochs to budget (each text is embedded or vectorised once)"
    steps = cls.tune_steps(cfg)
    if steps:
        if preview:
            steps = min(settings.preview_steps, steps)
            run.overrides.update(cls.step_cap(cfg, steps))
        note += f", after {steps} encoder-tuning steps" + (" (PREVIEW)" if preview else "")
    entry = evidence.evidence(run.member.evidence_key)
    if entry and not preview:
        note += f"; at {HIDDEN_TEST_ROWS:,} rows {entry['projected']}"
    if not run.blend:
        note += "; SAFETY NET: runs first, its submission.csv stands until a blended member finishes"
    run.note = note + run.note


def _fine_tuned(run: MemberRun, cfg: Config) -> str:
    return _shown(run.model_dir) if run.model_dir is not None else method_class(cfg.method).title(cfg)


def _probe(
    run: MemberRun, cfg: Config, processed: Processed, settings: NotebookSettings, keep_going: bool
) -> tuple[MemberRun, Config, Processed, Contender] | None:
    """A fine-tune timed on this GPU: (run, cfg, its rows, its claim on the budget); None when it was dropped."""
    from jigsaw_kit import pipeline
    from jigsaw_kit.core import checkpoints

    print(f"--- {run.member.name}: probe on this GPU ({method_class(cfg.method).title(cfg)})")
    same = {"template": cfg.template, "use_test_examples": cfg.use_test_examples}
    try:
        data = processed
        if any(processed.manifest.get(k) != v for k, v in same.items()):
            data = pipeline.build(cfg, kaggle_root=settings.input_root)  # another template: its own rows
        with checkpoints.attached(run.attached):
            tp, lengths = measure_run(cfg, data, settings)
    except Exception as e:  # noqa: BLE001  the rerun drops what fails (CUDA out of memory, a bad checkpoint)
        if not keep_going:
            raise
        run.status, run.reason = "dropped", f"its probe failed ({type(e).__name__}: {str(e)[:300]})"
        print(dropped_line(run))
        return None
    finally:
        release_gpu()  # the next member's probe must not fail on this one's leftovers
    tp = ddp_speed(tp, run.ddp)
    work = run_workload(cfg, data, devices=run.ddp)
    c = Contender(run.member.name, evidence.rank(run.member.evidence_key), run.device, work, tp, tuple(lengths or ()))
    return run, cfg, data, c


def plan_members(settings: NotebookSettings, processed: Processed, gpus: list[str], log: StageLog) -> list[MemberRun]:
    """What runs where, and with what: each member's config, GPU (or CPU), and, for a fine-tune, the probe's
    projection and the budget's cuts (passed to its process as --set overrides). On the preview, a smoke run.
    Members left out are returned too, with status "dropped" and the reason."""
    check_outputs(settings)
    test_rows = int(processed.manifest["counts"]["test_csv_rows"])
    keep_going = drops_failures(settings, test_rows)
    preview = is_preview(test_rows, settings.rerun, settings.full_on_preview)
    print(_policy(keep_going))
    if preview:
        print(preview_banner(test_rows, settings.preview_steps))
    ok, dropped = _checked(settings, keep_going)
    planned = _with_fast_member(ok, settings)
    uses = [method_class(c.cfg.method).gpu for c in planned]
    devices = assign_devices(uses, gpus)
    # The lone fine-tune or LoRA trains on every GPU (DDP) instead of leaving the second T4 idle.
    ddp = len(gpus) if uses.count("needs") == 1 and len(gpus) > 1 else 1
    runs: list[MemberRun] = []
    probes: list[tuple[MemberRun, Config, Processed, Contender]] = []
    for c, dev in zip(planned, devices):
        run = _member_run(c, dev, gpus, ddp, settings)
        runs.append(run)
        cfg = process_config(run)
        if not method_class(cfg.method).fine_tunes:
            _one_pass_note(run, cfg, preview, settings)
        elif preview:
            steps = min(settings.preview_steps, settings.max_steps or settings.preview_steps)
            run.overrides.update(method_class(cfg.method).step_cap(cfg, steps))
            run.note = f"fine-tune {_fine_tuned(run, cfg)}: PREVIEW, {steps} training steps, no probe{run.note}"
        elif (probe := _probe(run, cfg, processed, settings, keep_going)) is not None:
            probes.append(probe)
    _budget(probes, settings, log)
    release_gpu()
    runs += dropped
    print(format_plan(runs, gpus, evidence.summary))
    return runs


def _budget(
    probes: list[tuple[MemberRun, Config, Processed, Contender]], settings: NotebookSettings, log: StageLog
) -> None:
    """Cut, then drop the weakest, so that every fine-tune fits the budget; the cuts go into each run's overrides."""
    if not probes:
        return
    overhead, budget = plan_budget(settings, log)
    plans, drops = choose_within_budget([c for *_, c in probes], budget, overhead)
    why = dict(drops)
    shares = gpu_shares([c for *_, c in probes if c.name in plans])
    waits = pack_by_memory([c for *_, c in probes if c.name in plans], dict(settings.gpu_bytes))
    for run, cfg, data, c in probes:
        if c.name in why:
            run.status, run.reason = "dropped", why[c.name]
            print(dropped_line(run))
            continue
        plan = plans[c.name]
        k = shares[c.device] if c.device is not None else 1
        print(f"--- {run.member.name}: plan" + (f" ({k} fine-tunes share GPU {c.device})" if k > 1 else ""))
        totals = report_plan(data, settings, c.work, shared(c.tp, k), list(c.lengths or ()) or None, plan, overhead)
        run.overrides.update(plan_overrides(cfg, plan))
        parts = [f"this data {hms(plan.projection.total_s)}"] + [f"{label} {hms(t)}" for label, t in totals[1:]]
        cuts = f"; cuts: {', '.join(plan.changes)}" if plan.changes else ""
        run.after = waits.get(c.name)
        run.predict_s = plan.projection.predict_s
        peak = f"; probe peak {c.tp.peak_gpu_bytes / 2**30:.1f} GiB" if c.tp.peak_gpu_bytes else ""
        queued = f"; starts after {run.after} (both would not fit GPU {c.device}'s memory)" if run.after else ""
        run.note = f"fine-tune {_fine_tuned(run, cfg)}: projected {'; '.join(parts)}{cuts}{peak}{queued}{run.note}"


def _weighed(r: MemberRun) -> str:
    return f"{r.member.name} x {r.member.weight:g}" + (f" ({r.stopped_early})" if r.stopped_early else "")


def blend_finished(runs: list[MemberRun], processed: Processed, settings: NotebookSettings) -> list[MemberRun]:
    """submission.csv <- the finished members' per-rule rank blend (the safety net alone until another finishes),
    checked and written atomically; returns the members blended."""
    done = [r for r in runs if r.status == "done"]
    chosen = [r for r in done if r.blend] or done
    if not chosen:
        return []
    blend_members(chosen, processed, settings.submission)
    live = sum(r.status in ("planned", "done") for r in runs)
    what = ", ".join(_weighed(r) for r in chosen)
    print(f"submission.csv <- {what} ({len(done)} of {live} members finished; checked, written atomically)")
    return chosen


def train_members(
    runs: list[MemberRun], processed: Processed, settings: NotebookSettings, log: StageLog | None = None
) -> None:
    """The fast member alone first (submission.csv within a minute), then every other member at once, each in its
    own process (`jigsaw-kit run`); each one that finishes re-blends submission.csv. The wall-clock guard
    (settings.guard_hours after log.start) stops what still runs."""
    test_rows = int(processed.manifest["counts"]["test_csv_rows"])
    keep_going = drops_failures(settings, test_rows)
    deadline = (log.start if log is not None else time.time()) + settings.guard_hours * 3600
    live = [r for r in runs if r.status == "planned"]
    data_dir = Path(processed.manifest["data_dir"])

    def reblend(_: MemberRun) -> None:
        blend_finished(runs, processed, settings)

    kw = {"poll_s": settings.poll_s, "keep_going": keep_going, "deadline": deadline, "on_done": reblend}
    kw["stagger_s"] = settings.stagger_s
    first, rest = [r for r in live if r.first], [r for r in live if not r.first]
    if first:
        run_members(first, data_dir, **kw)
        if settings.submission.is_file():
            print(f"{settings.submission} is on disk before the slow members start ({first[0].member.name})")
    if rest:
        print(
            f"wall-clock guard: members still running at {time.strftime('%H:%M:%S', time.localtime(deadline))} "
            f"({settings.guard_hours:g} h after the start) are stopped; the best finished blend stays"
        )
        run_members(rest, data_dir, **kw)


def submit_members(runs: list[MemberRun], processed: Processed, settings: NotebookSettings) -> Path:
    """The finished members' predictions rank-blended within each rule, checked, written to submission.csv."""
    import pandas as pd

    chosen = blend_finished(runs, processed, settings)
    if not chosen:
        raise KitError("no member finished, so there is no submission: see the DROPPED lines above.")
    v = pd.read_csv(settings.submission)["rule_violation"]
    how = "per-rule rank blend of " + ", ".join(_weighed(r) for r in chosen)
    print(
        f"submission: {len(v):,} rows, {how if len(chosen) > 1 else 'the one member ' + chosen[0].member.name}; "
        f"rule_violation min {v.min():.3f} mean {v.mean():.3f} max {v.max():.3f} -> {settings.submission} "
        "(checked against sample_submission.csv)"
    )
    for r in chosen:
        if r.stopped_early:
            print(f"{r.member.name}: {r.stopped_early}: it trained less than planned; its predictions are in")
    left = [r for r in runs if r.status in ("failed", "dropped")]
    for r in left:
        print(dropped_line(r).splitlines()[0])
    if left:
        print(f"{len(left)} member(s) left out of this submission: see the DROPPED lines")
    return settings.submission
