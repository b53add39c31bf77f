"""The Kaggle path, internet off: the wheels the image lacks, the datasets to upload, the 12 h budget,
and the notebook's stages. The notebook does `from jigsaw_kit import kaggle as kk` and uses only the
names below, so the modules behind them can change without touching kernel/.

    wheels.py     what the image is assumed to hold and which wheels the bundle carries
    bundling.py   `jigsaw-kit bundle`: the wheels dataset and the model dataset
    budget.py     `jigsaw-kit kaggle-plan`: projected time against the limit, cuts and drops to fit
    evidence.py   what each member rests on: lb-proxy here, the leaderboard, its weight, its rank
    discover.py   MEMBERS = "auto": one member per attached checkpoint, by its config.json
    attached.py   the attached checkpoints a member's config names, found by their bundle's marker
    settings.py   the notebook's settings (its cells, JIGSAW_KIT_* variables) and its stage log
    notebook.py   the data stage and the single-config path
    probe.py      a fine-tune's probe, its projections and its cuts to the budget
    stages.py     plan, train, submit: checks first, the fast member, re-blends, drops and the wall-clock guard
    members.py    several members, one GPU each, rank-blended per rule; the preview decision; the plan table
    launch.py     one `jigsaw-kit run` process per member: started, watched, stopped at the guard
    safety_net.py the notebook's first cell (pasted, not imported there): a submission before pip, the rerun policy,
                  the install and its import check
"""

from jigsaw_kit.kaggle.attached import find_base_encoder, find_model_dir, member_config
from jigsaw_kit.kaggle.budget import (
    Contender,
    Throughput,
    Workload,
    choose_within_budget,
    fit_to_budget,
    format_projection,
    full_test_workloads,
    length_cost_ratio,
    project,
    training_row_counts,
)
from jigsaw_kit.kaggle.bundling import bundle, slug, tested_version
from jigsaw_kit.kaggle.discover import auto_members, classify, find_checkpoints
from jigsaw_kit.kaggle.evidence import EVIDENCE, extra_encoders_help
from jigsaw_kit.kaggle.launch import member_command, member_env
from jigsaw_kit.kaggle.members import (
    DEFAULT_MEMBERS,
    Member,
    MemberRun,
    assign_devices,
    blend_members,
    dropped_line,
    gpu_cards,
    is_preview,
    parse_members,
    visible_gpus,
)
from jigsaw_kit.kaggle.notebook import check_outputs, load_data, predict_and_submit, train_final
from jigsaw_kit.kaggle.probe import plan_run
from jigsaw_kit.kaggle.settings import NotebookSettings, StageLog
from jigsaw_kit.kaggle.stages import blend_finished, drops_failures, plan_members, submit_members, train_members
from jigsaw_kit.kaggle.wheels import KAGGLE_WHEELS, MODEL_MARKER, canonical_name, unaccounted_requirements

__all__ = [
    "DEFAULT_MEMBERS",
    "EVIDENCE",
    "KAGGLE_WHEELS",
    "MODEL_MARKER",
    "Contender",
    "Member",
    "MemberRun",
    "NotebookSettings",
    "StageLog",
    "Throughput",
    "Workload",
    "assign_devices",
    "auto_members",
    "blend_finished",
    "blend_members",
    "bundle",
    "canonical_name",
    "check_outputs",
    "choose_within_budget",
    "classify",
    "dropped_line",
    "drops_failures",
    "extra_encoders_help",
    "find_base_encoder",
    "find_checkpoints",
    "find_model_dir",
    "fit_to_budget",
    "gpu_cards",
    "format_projection",
    "full_test_workloads",
    "is_preview",
    "length_cost_ratio",
    "load_data",
    "member_command",
    "member_config",
    "member_env",
    "parse_members",
    "plan_members",
    "plan_run",
    "predict_and_submit",
    "project",
    "slug",
    "submit_members",
    "tested_version",
    "train_final",
    "train_members",
    "training_row_counts",
    "unaccounted_requirements",
    "visible_gpus",
]
