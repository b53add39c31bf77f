"""One interface for every learner, in the spirit of scikit-learn's estimators.

    method = methods.create(cfg)                 # the class registered under cfg.method
    method.fit(rows, work_dir)                   # labelled, templated rows -> self
    method.save(run_dir)
    scores = methods.load(run_dir, cfg).predict(rows)

The pipeline, CV, bench and the Kaggle notebook hold a `Method` and never ask which one. A new
learner is one module here, its options dataclass (methods/options.py), and a line in each of
`core.config.METHODS` and `core.config.OPTIONS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from jigsaw_kit.core.config import Config, MethodOptions
from jigsaw_kit.core.errors import KitError

if TYPE_CHECKING:  # annotations only: loading a config imports this module (methods/options.py), and stays light
    import numpy as np
    import pandas as pd


class Method(ABC):
    """Rows carry `rule`, `text`, `label` (for fit) and the template's `input_a`/`input_b`."""

    name: ClassVar[str]  # the config's `method`
    resumable: ClassVar[bool] = False  # keeps checkpoints that `train --resume` can continue
    # What the Kaggle notebook plans by, so it never branches on method names:
    uses_model: ClassVar[bool] = True  # embeds with or tunes the options' `model` checkpoint
    gpu: ClassVar[str] = "optional"  # "needs" one, "optional" (faster with one), or "none"
    # Fine-tunes `model` for epochs: the Kaggle plan probes it, projects its time and cuts its epochs to the budget,
    # and the notebook may swap in the attached base encoder for the kit's default. False: each text is embedded or
    # vectorised once, so there are no epochs to budget.
    fine_tunes: ClassVar[bool] = False
    # The stack's modules fit and predict import (a subset of kaggle.safety_net.STACK): the notebook drops a member
    # whose modules failed its import check instead of letting it fail hours later.
    modules: ClassVar[tuple[str, ...]] = ("yaml", "sklearn", "torch", "transformers")
    # A network's softmax over different inputs: all-equal scores mean it broke (pipeline.predict refuses
    # them). False where a constant is a legitimate answer (per-rule heads of a single-class rule).
    scores_vary: ClassVar[bool] = False

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.log_history: list[dict[str, Any]] = []  # per-step training log; empty for one-pass methods
        # extra train_metrics.json keys from fit, e.g. guards.stop_info (stopped_early by the deadline)
        self.train_info: dict[str, Any] = {}

    @abstractmethod
    def fit(
        self,
        rows: pd.DataFrame,
        work_dir: Path | None = None,
        resume_from: Path | None = None,
        unlabelled: pd.DataFrame | None = None,
    ) -> Method:
        """Learn from labelled rows; work_dir holds anything large made on the way (checkpoints). unlabelled: the
        rows predict will score, for a method that learns from them at fit (pseudo-labels); others ignore it."""

    @abstractmethod
    def predict(self, rows: pd.DataFrame, show_progress: bool = True) -> np.ndarray:
        """P(violation) per row, in the rows' order; only the order within a rule matters."""

    @abstractmethod
    def save(self, run_dir: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, run_dir: Path, cfg: Config) -> Method: ...

    @classmethod
    def imports(cls, cfg: Config) -> tuple[str, ...]:
        """The modules a run of this config imports (see `modules`)."""
        return cls.modules

    @classmethod
    def checkpoints(cls, cfg: Config) -> tuple[str, ...]:
        """Every checkpoint (a name under weights/ or a folder) a run of this config loads, `model` first."""
        if not cls.uses_model:
            return ()
        return tuple(dict.fromkeys([cfg.options.model, *getattr(cfg.options, "encoders", ())]))

    @classmethod
    def title(cls, cfg: Config) -> str:
        """How logs and tables name a run of this config: the method, or for a fine-tune the checkpoint it tunes."""
        return cfg.method

    # What the Kaggle plan asks instead of a method's name or keys; overrides are `--set` pairs, as a member's
    # `jigsaw-kit run` process receives them.
    @classmethod
    def step_cap(cls, cfg: Config, steps: int) -> dict[str, Any]:
        """Overrides that stop a run of this config's training after `steps` optimizer steps (a smoke run, the
        Kaggle preview); {} for a method that trains no steps."""
        return {}

    @classmethod
    def tune_steps(cls, cfg: Config) -> int:
        """Optimizer steps of a short, fixed tune that fit runs before its single pass (what the plan's note
        says); 0: none. A fine-tune's steps are the budget's business, not this."""
        return 0

    @classmethod
    def device_overrides(cls, cfg: Config, gpu: bool, bf16: bool) -> tuple[dict[str, Any], str]:
        """(overrides, why) the device imposes on this config: gpu, whether the run gets one; bf16, whether
        every GPU has fast bf16 (sm_80+). ({}, "") when the config runs there as it is."""
        return {}, ""

    @classmethod
    def trial(cls, cfg: Config, steps: int) -> Config:
        """This config cut to a timed trial of `steps` optimizer steps that keeps no checkpoint (the probe)."""
        return cfg.override(cls.step_cap(cfg, steps))

    def passes(self, rows: int) -> float:
        """How many times fit went over the rows (epochs); 1 for methods fitted in one pass."""
        return 1.0

    @classmethod
    def unfinished(cls, run_dir: Path) -> Path | None:
        """A checkpoint of an interrupted fit in run_dir, if the method keeps any."""
        return None

    @classmethod
    def check_saved(cls, run_dir: Path, cfg: Config) -> None:
        """KitError unless run_dir holds what load() reads, saved under this config (`predict --run-dir`, at start).

        By default nothing is checked here: load() itself refuses a folder without its model.
        """
        return None

    @classmethod
    def resume_point(cls, cfg: Config, run_dir: Path, manifest: dict | None) -> Path:
        """The checkpoint `--resume` continues from, after checking run_dir holds the same run."""
        raise KitError(f"--resume: method {cfg.method} trains in seconds and keeps no checkpoints; drop --resume.")


class FittedMethod(Method):
    """Fitted in seconds by scikit-learn and saved whole with joblib as `run_dir/<file>`."""

    file: ClassVar[str]

    def save(self, run_dir: Path) -> None:
        import joblib

        from jigsaw_kit.core.atomic import atomic_path

        atomic_path(Path(run_dir) / self.file, lambda t: joblib.dump(self, t))

    @classmethod
    def load(cls, run_dir: Path, cfg: Config) -> Method:
        import joblib

        p = Path(run_dir) / cls.file
        if not p.is_file():
            raise KitError(f"{p} missing: train first (`jigsaw-kit train --config {cfg.name}`).")
        try:
            method = joblib.load(p)
        except Exception as e:  # a pickle cut short or overwritten fails with anything from EOFError to KeyError
            raise KitError(
                f"{p} cannot be loaded ({type(e).__name__}: {str(e)[:80]}): it is cut short or damaged. "
                f"Train again (`jigsaw-kit train --config {cfg.name} --run-dir {run_dir}`)."
            ) from None
        if not isinstance(method, cls):
            raise KitError(f"{p} holds a {type(method).__name__}, not a saved {cls.name} model: train again.")
        # pickled before options were split per method (an unpickled flat Config has only the class's None)
        if not isinstance(getattr(getattr(method, "cfg", None), "options", None), MethodOptions):
            raise KitError(
                f"{p} was saved by an older kit version, whose config this one cannot read: train again "
                f"(`jigsaw-kit train --config {cfg.name} --run-dir {run_dir}`)."
            )
        return method

    @classmethod
    def check_saved(cls, run_dir: Path, cfg: Config) -> None:
        """The saved model loads, and was fitted under the config config.yaml holds (not a file from another run):
        the shared keys and every option, groups' too (`tune.steps`)."""
        saved = cls.load(run_dir, cfg).cfg.flat()
        now = cfg.flat()
        differ = [k for k in {**saved, **now} if k != "extra" and saved.get(k) != now.get(k)]  # extra: notes
        if differ:
            k, yaml_file = differ[0], Path(run_dir) / "config.yaml"
            raise KitError(
                f"{Path(run_dir) / cls.file} was fitted with {k}={saved.get(k)!r}, but {yaml_file} says "
                f"{k}={now.get(k)!r} ({len(differ)} key(s) differ: {differ[:5]}): the folder mixes two runs. "
                "Train again into a fresh --run-dir."
            )
