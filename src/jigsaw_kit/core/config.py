"""Typed run configuration: a dataclass filled from a named YAML file, then CLI overrides.

Unknown keys and wrong types are errors (a typo must not silently fall back to a default).
Named configs live in `src/jigsaw_kit/configs/` (`configs/` at the repo root points there)
so they ship inside the wheel used on Kaggle.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from jigsaw_kit.core.errors import KitError

# The method registry: a config's `method` -> the class that implements it (jigsaw_kit.methods.base.Method).
# Strings, imported on demand, so that reading a config never imports torch.
METHODS = {
    "transformer": "jigsaw_kit.methods.transformer.method:TransformerMethod",
    "tfidf-lr": "jigsaw_kit.methods.tfidf:TfidfRuleModel",
    "hybrid": "jigsaw_kit.methods.hybrid:HybridRuleModel",
    "contrastive": "jigsaw_kit.methods.contrastive:ContrastiveHybrid",
}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
HEADS = ("auto", "seq-cls", "yes-no")
TUNE_OBJECTIVES = ("pairs", "triplets")  # contrastive.py's encoder tune
EMBED_BACKENDS = ("auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")  # methods/embed_backends.py


@dataclass
class Config:
    """Every knob of a run. Defaults are the CPU MiniLM recipe; configs/*.yaml say why."""

    name: str = "cpu-minilm"
    # "transformer" (fine-tune a checkpoint), "tfidf-lr" (baseline), "hybrid" (hybrid.py: TF-IDF +
    # frozen-encoder embeddings, per-rule logistic regressions, exact lookup of labelled texts) or
    # "contrastive" (the hybrid on an encoder tuned on rule pairs first); see METHODS above
    method: str = "transformer"
    # data
    template: str = "rule-body"
    use_test_examples: bool = True  # the test file's 2+2 examples per row are labelled training rows
    # model
    model: str = "all-MiniLM-L6-v2"  # a folder path, or a name under weights/
    max_length: int = 256
    # optimisation
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs (tests, smoke runs)
    learning_rate: float = 5e-5
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    label_smoothing: float = 0.0  # soft targets (the labels are noisy: examples disagree with bodies 1% of the time)
    upsample_test_examples: int = 1  # repeat rows labelled by the test file's examples this many times in all
    precision: str = "auto"  # auto: fp16 on GPUs without fast bf16 (T4), bf16 where fast, fp32 on CPU
    logging_steps: int = 10
    save_steps: int = 0  # > 0 keeps Trainer checkpoints every N steps (resume); 0 keeps only the final model
    # inference
    predict_token_budget: int = 16384  # padded tokens per inference batch (length-sorted batches)
    # tf-idf baseline
    tfidf_max_features: int = 50000
    tfidf_c: float = 4.0
    # hybrid (hybrid.py)
    embed_c: float = 3.0  # inverse L2 strength of the per-rule logistic regression on embeddings
    tfidf_weight: float = 0.5  # weight of the TF-IDF probability; the embedding model gets the rest
    exact_lookup: bool = True  # a text labelled under its rule in the training rows takes that label
    # Extra frozen sentence encoders (paths or names under weights/), each with its own per-rule members beside
    # `model`'s (for contrastive, the tuned one); their scores are averaged, as different backbones err partly
    # differently (5th place on Kaggle averaged several). [] = `model` alone
    encoders: list[str] = field(default_factory=list)
    # > 0: per rule and encoder, also a distance-weighted cosine kNN over this many neighbours (5th place: 10-15);
    # it follows local clusters of near-duplicate comments that one linear boundary smooths over. 0 = off
    knn_k: int = 0
    knn_weight: float = 0.5  # the kNN's share of each encoder's score, the LR gets the rest (when knn_k > 0)
    # non-empty: each per-rule embedding LR picks its C from this grid by 3-fold AUC (rules differ in size and
    # separability, so one C under- or over-fits some); [] = embed_c everywhere
    embed_c_grid: list[float] = field(default_factory=list)
    # per rule and encoder, 4 features beside the embedding in its LR: cosine to the rule's violating-row centroid,
    # to its other-row centroid, their difference, and to the rule text's own embedding (a public notebook that
    # 3rd/5th/9th/12th place built on); the fit rows' own centroids leave the row out
    centroid_features: bool = False
    # > 0 (below 0.5): one round of pseudo-labels at predict; per rule the top this share of the unlabelled rows by
    # score become violations, the bottom share not, and the heads are refitted with them (11th place). 0 = off
    pseudo_share: float = 0.0
    # where the sentence encoder runs for hybrid/contrastive (methods/embed_backends.py): torch-fp32 (the reference),
    # torch-bf16, onnx-fp32, onnx-int8 (ONNX Runtime, dynamic int8), or auto (the measured choice for this CPU; PyTorch
    # on a GPU). A backend this machine cannot run falls back to torch-fp32 with a warning
    embed_backend: str = "torch-fp32"
    # contrastive (contrastive.py): the hybrid on an encoder tuned on rule pairs (max_steps, learning_rate,
    # batch_size, warmup_ratio drive that tune)
    freeze_layers: int = 0  # freeze the token embeddings and this many lowest encoder layers while tuning
    # pairs: within-rule comment pairs, CosineSimilarityLoss; triplets: (rule text, violating comment, other
    # comment of that rule), TripletLoss (the public notebook's rule-anchored tune)
    tune_objective: str = "pairs"
    negated_rules: bool = False  # triplets: also each triplet anchored on the rule's negation, labels swapped (3rd)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes; never read by code
    # backbone head and adapters (models.py, docs/models.md)
    head: str = "auto"  # auto | seq-cls | yes-no; encoders are always seq-cls, see models.resolve_head
    lora_r: int = 0  # LoRA rank; 0 = full fine-tuning
    lora_alpha: int = 32  # LoRA scale is lora_alpha / lora_r
    lora_dropout: float = 0.05
    # LoRA on these linear layers of the backbone (last name component, e.g. q_proj), or all-linear
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    load_in_4bit: bool = False  # QLoRA: frozen NF4 base (bitsandbytes, CUDA only); needs lora_r > 0
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower

    def validate(self) -> None:
        if self.method not in METHODS:
            raise KitError(f"config '{self.name}': method must be one of {tuple(METHODS)}, got {self.method!r}.")
        if self.precision not in PRECISIONS:
            raise KitError(f"config '{self.name}': precision must be one of {PRECISIONS}, got {self.precision!r}.")
        for key in ("max_length", "batch_size", "grad_accum", "predict_token_budget", "logging_steps"):
            if getattr(self, key) <= 0:
                raise KitError(f"config '{self.name}': {key} must be > 0, got {getattr(self, key)}.")
        if not math.isfinite(self.epochs) or (self.epochs <= 0 and self.max_steps <= 0):
            raise KitError(f"config '{self.name}': set epochs > 0 or max_steps > 0 (epochs is {self.epochs}).")
        if not 0 <= self.tfidf_weight <= 1:
            raise KitError(f"config '{self.name}': tfidf_weight must be in [0, 1], got {self.tfidf_weight}.")
        # written "not x > 0" so that nan is refused too; inf would make the optimiser or the regression diverge
        for key in ("learning_rate", "embed_c", "tfidf_c"):
            if not 0 < getattr(self, key) < math.inf:
                raise KitError(f"config '{self.name}': {key} must be a finite number > 0, got {getattr(self, key)}.")
        if not 0 <= self.weight_decay < math.inf:
            raise KitError(f"config '{self.name}': weight_decay must be a finite number >= 0, got {self.weight_decay}.")
        if self.tfidf_max_features <= 0 or self.save_steps < 0 or not 0 <= self.seed < 2**32:
            raise KitError(
                f"config '{self.name}': tfidf_max_features must be > 0, save_steps >= 0 and seed in [0, 2**32), got "
                f"{self.tfidf_max_features}, {self.save_steps}, {self.seed}."
            )
        self._validate_hybrid()
        if not 0 <= self.label_smoothing < 1 or self.upsample_test_examples < 1:
            raise KitError(f"config '{self.name}': label_smoothing must be in [0, 1) and upsample_test_examples >= 1.")
        if self.freeze_layers < 0:
            raise KitError(f"config '{self.name}': freeze_layers must be >= 0, got {self.freeze_layers}.")
        if not 0 <= self.warmup_ratio < 1:
            raise KitError(f"config '{self.name}': warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        from jigsaw_kit.core.templates import TEMPLATES  # local import: templates imports nothing from here

        if self.template not in TEMPLATES:
            raise KitError(
                f"config '{self.name}': unknown template {self.template!r}; choose one of {sorted(TEMPLATES)}."
            )
        self._validate_backbone()

    def _validate_hybrid(self) -> None:
        if any(not isinstance(e, str) or not e.strip() for e in self.encoders):
            raise KitError(f"config '{self.name}': encoders must be non-empty names or paths, got {self.encoders}.")
        if self.knn_k < 0:
            raise KitError(f"config '{self.name}': knn_k must be >= 0 (0 = no kNN), got {self.knn_k}.")
        if not 0 <= self.knn_weight <= 1:
            raise KitError(f"config '{self.name}': knn_weight must be in [0, 1], got {self.knn_weight}.")
        if not all(c > 0 for c in self.embed_c_grid):  # "not >" also catches nan
            raise KitError(f"config '{self.name}': embed_c_grid values must be > 0, got {self.embed_c_grid}.")
        if not (self.pseudo_share == 0 or 0 < self.pseudo_share < 0.5):  # also refuses nan
            raise KitError(
                f"config '{self.name}': pseudo_share must be 0 (off) or in (0, 0.5), got {self.pseudo_share}."
            )
        if self.embed_backend not in EMBED_BACKENDS:
            raise KitError(
                f"config '{self.name}': embed_backend must be one of {EMBED_BACKENDS}, got {self.embed_backend!r}."
            )
        if self.tune_objective not in TUNE_OBJECTIVES:
            raise KitError(
                f"config '{self.name}': tune_objective must be one of {TUNE_OBJECTIVES}, got {self.tune_objective!r}."
            )
        if self.negated_rules and self.tune_objective != "triplets":
            raise KitError(f"config '{self.name}': negated_rules needs tune_objective: triplets (it negates anchors).")

    def _validate_backbone(self) -> None:
        from jigsaw_kit.core.templates import ANSWER_SLOTS

        if self.head not in HEADS:
            raise KitError(f"config '{self.name}': head must be one of {HEADS}, got {self.head!r}.")
        if self.head == "yes-no" and self.template not in ANSWER_SLOTS:
            raise KitError(
                f"config '{self.name}': head yes-no needs a template that ends in an answer slot; "
                f"template {self.template!r} has none. Choose one of {sorted(ANSWER_SLOTS)}."
            )
        if self.lora_r < 0:
            raise KitError(f"config '{self.name}': lora_r must be >= 0 (0 = no LoRA), got {self.lora_r}.")
        if self.lora_r > 0 and self.lora_alpha <= 0:
            raise KitError(f"config '{self.name}': lora_alpha must be > 0, got {self.lora_alpha}.")
        if not 0 <= self.lora_dropout < 1:
            raise KitError(f"config '{self.name}': lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if "all-linear" in self.lora_target_modules and len(self.lora_target_modules) > 1:
            raise KitError(
                f"config '{self.name}': lora_target_modules is either [all-linear] or a list of layer names, "
                f"got {self.lora_target_modules}."
            )
        if self.load_in_4bit and self.lora_r <= 0:
            raise KitError(
                f"config '{self.name}': load_in_4bit (QLoRA) trains adapters on a frozen 4-bit base; set lora_r > 0."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_dir() -> Path:
    return Path(str(importlib.resources.files("jigsaw_kit") / "configs"))


def available_configs() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path as given, else a named config shipped with the kit."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise KitError(f"config file {p} does not exist. Named configs: {', '.join(available_configs())}.")
        return p
    named = config_dir() / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    raise KitError(
        f"unknown config {name_or_path!r}: not a file and not a named config. "
        f"Named configs: {', '.join(available_configs())}; or pass a path to a .yaml file."
    )


def _coerce(key: str, value: Any, typ: Any, source: str) -> Any:
    """Check/convert one value to the dataclass field's type, with a message naming the key."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif typ in (list[str], list[float]):
        return _coerce_list(key, value, typ, source)
    else:  # dict
        if isinstance(value, dict):
            return value
    raise KitError(f"{source}: '{key}' must be of type {getattr(typ, '__name__', typ)}, got {value!r}.")


# List keys whose default [] means "off": an empty list (or `--set key=`) is valid for them.
_MAY_BE_EMPTY = ("encoders", "embed_c_grid")


def _coerce_list(key: str, value: Any, typ: Any, source: str) -> list:
    """A YAML list, or one comma-separated string (what `--set key=a,b` gives), of names or numbers."""
    empty_ok = key in _MAY_BE_EMPTY
    if empty_ok and (value is None or (isinstance(value, str) and not value.strip())):
        return []
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (list, tuple)) and (items or empty_ok):
        if typ == list[str] and all(isinstance(v, str) and v.strip() for v in items):
            return [v.strip() for v in items]
        if typ == list[float] and not any(isinstance(v, bool) for v in items):
            try:
                return [float(v) for v in items]
            except (TypeError, ValueError):
                pass
    what = "names" if typ == list[str] else "numbers"
    raise KitError(
        f"{source}: '{key}' must be a {'' if empty_ok else 'non-empty '}list of {what} "
        f"(or a comma-separated string), got {value!r}."
    )


def _apply(cfg: Config, values: dict[str, Any], source: str) -> Config:
    hints = get_type_hints(Config)
    known = {f.name for f in fields(Config)}
    unknown = sorted(map(str, set(values) - known))  # str: YAML keys may be numbers, which sort against no str
    if unknown:
        raise KitError(f"{source}: unknown key(s) {unknown}. Known keys: {', '.join(sorted(known))}.")
    typed = {
        k: _coerce(k, v, hints[k] if hints[k] in (bool, int, float, str, list[str], list[float]) else dict, source)
        for k, v in values.items()
    }
    return dataclasses.replace(cfg, **typed)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings from `--set` into a dict (values typed later against the dataclass)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise KitError(f"--set expects key=value, got {pair!r} (e.g. --set epochs=1).")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def load_config(name_or_path: str = "cpu-minilm", overrides: dict[str, Any] | None = None) -> Config:
    """Named config or YAML path, then overrides; validated."""
    path = resolve_config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        mark = getattr(e, "problem_mark", None)  # one line: the problem and where, not PyYAML's drawing of it
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(e, "problem", None) or " ".join(str(e).split())
        raise KitError(f"config file {path} is not valid YAML (UTF-8 text; {why}{where}): fix or re-save it.") from None
    if not isinstance(raw, dict):
        raise KitError(f"config file {path} must hold a mapping of key: value, got {type(raw).__name__}.")
    raw.setdefault("name", path.stem)
    cfg = _apply(Config(), raw, f"config file {path}")
    if overrides:
        cfg = _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "command-line override")
    try:
        cfg.validate()
    except KitError as e:  # name the file: a run folder's config.yaml is not one the user chose by name
        raise KitError(f"{e} (config file {path}{', with command-line overrides' if overrides else ''})") from None
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
