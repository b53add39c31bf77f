"""The Kaggle path, internet off: the wheels the image lacks, the datasets to upload, the 12 h budget,
and the notebook's stages. The notebook does `from jigsaw_kit import kaggle as kk` and uses only the
names below, so the modules behind them can change without touching kernel/.

    wheels.py     what the image is assumed to hold and which wheels the bundle carries
    bundling.py   `jigsaw-kit bundle`: the wheels dataset and the model dataset
    budget.py     `jigsaw-kit kaggle-plan`: projected time against the limit, and cuts to fit
    notebook.py   the notebook's stages: settings, stage log, load, probe, plan, train, submit
    members.py    several members, one process (and GPU) each, rank-blended per rule; the preview fast path
"""

from jigsaw_kit.kaggle.budget import (
    Throughput,
    Workload,
    fit_to_budget,
    format_projection,
    full_test_workloads,
    length_cost_ratio,
    project,
    training_row_counts,
)
from jigsaw_kit.kaggle.bundling import bundle, slug, tested_version
from jigsaw_kit.kaggle.members import (
    DEFAULT_MEMBERS,
    Member,
    MemberRun,
    assign_devices,
    blend_members,
    is_preview,
    member_command,
    member_env,
    parse_members,
    visible_gpus,
)
from jigsaw_kit.kaggle.notebook import (
    NotebookSettings,
    StageLog,
    find_base_encoder,
    find_model_dir,
    load_data,
    member_config,
    plan_members,
    plan_run,
    predict_and_submit,
    submit_members,
    train_final,
    train_members,
)
from jigsaw_kit.kaggle.wheels import KAGGLE_WHEELS, MODEL_MARKER, canonical_name, unaccounted_requirements

__all__ = [
    "DEFAULT_MEMBERS",
    "KAGGLE_WHEELS",
    "MODEL_MARKER",
    "Member",
    "MemberRun",
    "NotebookSettings",
    "StageLog",
    "Throughput",
    "Workload",
    "assign_devices",
    "blend_members",
    "bundle",
    "canonical_name",
    "find_base_encoder",
    "find_model_dir",
    "fit_to_budget",
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
