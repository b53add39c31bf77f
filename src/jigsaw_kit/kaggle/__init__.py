"""The Kaggle path, internet off: the wheels the image lacks, the datasets to upload, the 12 h budget,
and the notebook's stages. The notebook does `from jigsaw_kit import kaggle as kk` and uses only the
names below, so the modules behind them can change without touching kernel/.

    wheels.py     what the image is assumed to hold and which wheels the bundle carries
    bundling.py   `jigsaw-kit bundle`: the wheels dataset and the model dataset
    budget.py     `jigsaw-kit kaggle-plan`: projected time against the limit, and cuts to fit
    notebook.py   the notebook's stages: settings, stage log, load, probe, plan, train, submit
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
from jigsaw_kit.kaggle.notebook import (
    NotebookSettings,
    StageLog,
    find_model_dir,
    load_data,
    plan_run,
    predict_and_submit,
    train_final,
)
from jigsaw_kit.kaggle.wheels import KAGGLE_WHEELS, MODEL_MARKER, canonical_name, unaccounted_requirements

__all__ = [
    "KAGGLE_WHEELS",
    "MODEL_MARKER",
    "NotebookSettings",
    "StageLog",
    "Throughput",
    "Workload",
    "bundle",
    "canonical_name",
    "find_model_dir",
    "fit_to_budget",
    "format_projection",
    "full_test_workloads",
    "length_cost_ratio",
    "load_data",
    "plan_run",
    "predict_and_submit",
    "project",
    "slug",
    "tested_version",
    "train_final",
    "training_row_counts",
    "unaccounted_requirements",
]
