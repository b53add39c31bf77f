"""Each method's own options (core/config.py, methods/options.py, methods/transformer/options.py).

The old loader's values are written here as literals (recorded before options were split per method),
so a changed default or a wrong old-name mapping fails these tests instead of moving predictions.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import joblib
import pytest
import yaml

from jigsaw_kit.core.config import COMMON, Config, available_configs, load_config, parse_overrides, save_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.methods.base import FittedMethod
from jigsaw_kit.methods.options import ContrastiveOptions, HybridOptions, TfidfOptions, TuneOptions
from jigsaw_kit.methods.tfidf import TfidfRuleModel
from jigsaw_kit.methods.transformer.options import TransformerOptions

# Config().to_dict() of the flat 42-key Config, as the kit saved it in every run folder's config.yaml
OLD_DEFAULTS = {
    "name": "cpu-minilm", "method": "transformer", "template": "rule-body", "use_test_examples": True,
    "model": "all-MiniLM-L6-v2", "max_length": 256, "epochs": 2.0, "max_steps": -1, "learning_rate": 5e-05,
    "batch_size": 16, "grad_accum": 1, "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 42, "label_smoothing": 0.0,
    "upsample_test_examples": 1, "precision": "auto", "logging_steps": 10, "save_steps": 0,
    "predict_token_budget": 16384, "tfidf_max_features": 50000, "tfidf_c": 4.0, "embed_c": 3.0, "tfidf_weight": 0.5,
    "exact_lookup": True, "encoders": [], "knn_k": 0, "knn_weight": 0.5, "embed_c_grid": [],
    "centroid_features": False, "pseudo_share": 0.0, "embed_backend": "torch-fp32", "freeze_layers": 0,
    "tune_objective": "pairs", "negated_rules": False, "extra": {}, "head": "auto", "lora_r": 0, "lora_alpha": 32,
    "lora_dropout": 0.05, "lora_target_modules": ["all-linear"], "load_in_4bit": False,
    "gradient_checkpointing": False,
}  # fmt: skip

# Each shipped config as the old loader read it: the keys that differed from OLD_DEFAULTS
OLD_SHIPPED = {
    "cpu-contrastive": {"method": "contrastive", "max_length": 128, "max_steps": 20, "batch_size": 32,
                        "embed_backend": "auto", "freeze_layers": 3},
    "cpu-crossenc": {"template": "rule-body-urls", "max_length": 200, "epochs": 3.0, "upsample_test_examples": 2,
                     "head": "seq-cls"},
    "cpu-hybrid": {"method": "hybrid"},
    "cpu-hybrid-ensemble": {"method": "hybrid", "encoders": ["all-mpnet-base-v2"]},
    "cpu-hybrid-knn": {"method": "hybrid", "knn_k": 12, "knn_weight": 0.3},
    "cpu-hybrid-pseudo": {"method": "hybrid", "pseudo_share": 0.1},
    "cpu-minilm": {},
    "cpu-triplet": {"method": "contrastive", "max_length": 128, "max_steps": 20, "batch_size": 32,
                    "centroid_features": True, "embed_backend": "auto", "freeze_layers": 3,
                    "tune_objective": "triplets"},
    "kaggle-t4": {"epochs": 3.0, "batch_size": 32, "logging_steps": 25, "predict_token_budget": 65536},
    # kaggle-t4 / kaggle-t4-deberta with discover.ROUND3 (template rule-body-urls, test examples x2, lr 2e-5) as
    # the notebook's auto members wrote them in code before they became named configs
    "kaggle-t4-round3": {"epochs": 3.0, "batch_size": 32, "logging_steps": 25, "predict_token_budget": 65536,
                         "template": "rule-body-urls", "upsample_test_examples": 2, "learning_rate": 2e-05},
    "kaggle-t4-deberta-round3": {"model": "deberta-v3-base", "epochs": 3.0, "learning_rate": 2e-05,
                                 "precision": "fp16", "logging_steps": 25, "predict_token_budget": 32768,
                                 "head": "seq-cls", "template": "rule-body-urls", "upsample_test_examples": 2},
    "kaggle-t4-deberta": {"model": "deberta-v3-base", "epochs": 3.0, "learning_rate": 2e-05, "precision": "fp16",
                          "logging_steps": 25, "predict_token_budget": 32768, "head": "seq-cls"},
    "kaggle-t4-mpnet": {"template": "rule-body-urls", "model": "all-mpnet-base-v2", "learning_rate": 2e-05,
                        "batch_size": 32, "upsample_test_examples": 2, "logging_steps": 25,
                        "predict_token_budget": 65536, "head": "seq-cls"},
    "kaggle-t4-qwen-lora": {"template": "yes-no-chatml", "model": "qwen2.5-3b-instruct", "max_length": 320,
                            "epochs": 1.0, "learning_rate": 0.0001, "batch_size": 4, "grad_accum": 4,
                            "warmup_ratio": 0.05, "weight_decay": 0.0, "precision": "fp16", "head": "yes-no",
                            "lora_r": 16, "gradient_checkpointing": True},
    "tfidf-lr": {"method": "tfidf-lr"},
}  # fmt: skip


# Keys added after the split, with the value that does what the old code did: the tune ran in fp32 on the CPU
ADDED_SINCE = {"tune.precision": "fp32"}
# Values changed on purpose since, each measured: the tune in bf16 where the CPU has the units (issue 26: lb-proxy
# 0.8591 either way, paired +0.0000 +- 0.0002 over 15 folds)
CHANGED_SINCE = {"cpu-contrastive": {"tune.precision": "auto"}, "cpu-triplet": {"tune.precision": "auto"}}


def test_every_shipped_config_is_recorded():
    assert set(OLD_SHIPPED) == set(available_configs())


@pytest.mark.parametrize("name", sorted(OLD_SHIPPED))
def test_shipped_configs_load_to_the_old_values(name):
    old = {**OLD_DEFAULTS, "name": name, **OLD_SHIPPED[name]}
    cfg = load_config(name)
    legacy = type(cfg.options).LEGACY
    new = cfg.flat()
    # every key the method has now, under its new name, holds what the old loader gave its old name
    olds = {legacy.get(k, k): v for k, v in old.items() if legacy.get(k, k) in new}
    olds.update({k: v for k, v in ADDED_SINCE.items() if k in new})
    olds.update(CHANGED_SINCE.get(name, {}))
    assert set(olds) == set(new), f"keys without an old value: {set(new) - set(olds)}"
    assert {k: new[k] for k in olds} == olds


def test_contrastive_max_steps_no_longer_falls_back_to_20():
    # the old tune quietly ran 20 steps for max_steps <= 0: now 20 is the default and 0 is refused
    with pytest.raises(KitError, match=r"tune.steps must be > 0, got -1"):
        load_config("cpu-contrastive", {"max_steps": "-1"})
    with pytest.raises(KitError, match=r"tune.steps must be > 0, got 0"):
        load_config("cpu-contrastive", {"tune.steps": "0"})


def test_a_contrastive_config_without_tune_keys_tunes_as_before(tmp_path):
    # the old effective values of an unset key: max_steps -1 meant 20 steps, batch 16, rate 5e-5, warmup 0.1
    p = tmp_path / "c.yaml"
    p.write_text("method: contrastive\n")
    tune = load_config(str(p)).options.tune
    assert tune == TuneOptions(20, 16, 5e-5, 0.1, 0, "pairs", False, "fp32")


@pytest.mark.parametrize(
    "config, pair, key",
    [("tfidf-lr", "knn_k=3", "knn_k"), ("tfidf-lr", "freeze_layers=2", "freeze_layers"),
     ("tfidf-lr", "model=x", "model"), ("cpu-hybrid", "epochs=1", "epochs"), ("cpu-hybrid", "max_steps=5", "max_steps"),
     ("cpu-minilm", "tune.steps=5", "tune.steps"), ("cpu-minilm", "tfidf_c=1", "tfidf_c"),
     ("cpu-contrastive", "tune.epochs=1", "tune.epochs"), ("cpu-contrastive", "precision=fp16", "precision")],
)  # fmt: skip
def test_a_key_of_another_method_is_refused_naming_the_method_and_its_keys(config, pair, key):
    method = load_config(config).method
    own = ", ".join(load_config(config).options.keys())
    with pytest.raises(KitError) as e:
        load_config(config, parse_overrides([pair]))
    msg = str(e.value)
    assert f"{key} is not an option of method {method}; its keys: {own}" in msg
    assert "keys of every method: " + ", ".join(COMMON) in msg


def test_the_message_says_which_method_has_the_key():
    with pytest.raises(KitError, match=r"knn_k is an option of method hybrid, contrastive\."):
        load_config("tfidf-lr", {"knn_k": "3"})
    with pytest.raises(KitError, match=r"freeze_layers is an option of method contrastive \(as tune.freeze_layers\)"):
        load_config("tfidf-lr", {"freeze_layers": "2"})


def test_both_knn_k_and_freeze_layers_on_tfidf_fail_at_start(tmp_path, capsys):
    from jigsaw_kit.cli import main

    for pair in ("knn_k=3", "freeze_layers=2"):
        # the data folder does not exist: the config must fail first
        argv = ["run", "--data-dir", str(tmp_path / "none"), "--config", "tfidf-lr", "--set", pair]
        assert main([*argv, "--output", str(tmp_path / "s.csv")]) == 2
        err = capsys.readouterr().err
        assert f"{pair.split('=')[0]} is not an option of method tfidf-lr; its keys: tfidf_max_features, tfidf_c" in err


def test_dotted_set_and_nested_yaml(tmp_path):
    cfg = load_config("cpu-contrastive", parse_overrides(["tune.steps=30", "tune.objective=triplets"]))
    assert cfg.options.tune.steps == 30 and cfg.options.tune.objective == "triplets"
    assert cfg.options.tune.freeze_layers == 3  # the file's value stays
    p = tmp_path / "c.yaml"
    p.write_text("method: contrastive\ntune:\n  steps: 7\n  negated_rules: true\n  objective: triplets\n")
    tune = load_config(str(p)).options.tune
    assert (tune.steps, tune.negated_rules, tune.batch_size) == (7, True, 16)
    p.write_text("method: contrastive\ntune:\n  stepz: 7\n")
    with pytest.raises(KitError, match="tune.stepz is not an option of method contrastive"):
        load_config(str(p))
    with pytest.raises(KitError, match="tune is a group of options"):
        load_config("cpu-contrastive", {"tune": "3"})


def test_old_flat_names_map_to_the_tune():
    cfg = load_config(
        "cpu-contrastive",
        parse_overrides(["max_steps=9", "batch_size=8", "learning_rate=1e-4", "warmup_ratio=0.2", "freeze_layers=1",
                         "tune_objective=triplets", "negated_rules=true"]),
    )  # fmt: skip
    assert cfg.options.tune == TuneOptions(9, 8, 1e-4, 0.2, 1, "triplets", True, "auto")  # precision: the config's
    with pytest.raises(KitError, match="max_steps and tune.steps are both set, and both mean tune.steps"):
        load_config("cpu-contrastive", {"max_steps": "9", "tune.steps": "8"})
    # a wrong type names the key as written
    with pytest.raises(KitError, match="'max_steps' must be of type int"):
        load_config("cpu-contrastive", {"max_steps": "lots"})


def test_tune_options_are_apart_from_a_fine_tunes():
    tuned = load_config("cpu-contrastive", {"tune.learning_rate": "1e-4"}).options
    assert isinstance(tuned, ContrastiveOptions) and not hasattr(tuned, "learning_rate")
    assert not hasattr(tuned, "epochs") and tuned.tune.learning_rate == 1e-4
    fine = load_config("cpu-minilm", {"learning_rate": "1e-4", "max_steps": "5"}).options
    assert isinstance(fine, TransformerOptions) and not hasattr(fine, "tune")
    assert (fine.learning_rate, fine.max_steps) == (1e-4, 5)
    # the same old flat key lands in each method's own place
    assert load_config("cpu-minilm", {"batch_size": "8"}).options.batch_size == 8
    assert load_config("cpu-contrastive", {"batch_size": "8"}).options.tune.batch_size == 8


def test_options_validate_their_own_values():
    for config, values, msg in [
        ("cpu-contrastive", {"tune.objective": "quads"}, "tune.objective must be one of"),
        ("cpu-contrastive", {"negated_rules": "true"}, "tune.negated_rules needs tune.objective: triplets"),
        ("cpu-contrastive", {"tune.warmup_ratio": "1"}, r"tune.warmup_ratio must be in \[0, 1\)"),
        ("cpu-contrastive", {"tune.freeze_layers": "-1"}, "tune.freeze_layers must be >= 0"),
        ("cpu-hybrid", {"embed_backend": "gpu"}, "embed_backend must be one of"),
        ("cpu-hybrid", {"pseudo_share": "0.5"}, "pseudo_share must be 0"),
        ("cpu-hybrid", {"max_length": "0"}, "max_length must be > 0"),
        ("tfidf-lr", {"tfidf_c": "nan"}, "tfidf_c must be a finite number > 0"),
        ("cpu-minilm", {"epochs": "0"}, "set epochs > 0 or max_steps > 0"),
    ]:
        with pytest.raises(KitError, match=msg):
            load_config(config, values)


@pytest.mark.parametrize("name", sorted(OLD_SHIPPED))
def test_save_and_load_round_trip(name, tmp_path):
    cfg = load_config(name)
    if cfg.method == "contrastive":
        cfg = load_config(name, {"tune.steps": "31", "encoders": "a,b"})
    save_config(cfg, tmp_path / "config.yaml")
    raw = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert set(raw) == {*COMMON, *(k.split(".")[0] for k in cfg.options.keys())}  # only this method's keys
    assert load_config(str(tmp_path / "config.yaml")) == cfg
    if cfg.method == "contrastive":
        assert raw["tune"]["steps"] == 31 and "max_steps" not in raw


def test_an_old_run_folders_flat_config_is_refused_with_the_retrain_command(tmp_path):
    run = tmp_path / "runs" / "cpu-contrastive"
    run.mkdir(parents=True)
    old = {**OLD_DEFAULTS, "name": "cpu-contrastive", **OLD_SHIPPED["cpu-contrastive"]}
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(KitError) as e:
        load_config(str(run / "config.yaml"))
    msg = str(e.value)
    assert "saved by an older kit version: train again" in msg
    assert f"jigsaw-kit train --config cpu-contrastive --run-dir {run}" in msg


def test_an_old_pickle_is_refused_with_the_retrain_command(tmp_path):
    cfg = load_config("tfidf-lr")
    model = TfidfRuleModel(cfg)
    old = Config.__new__(Config)  # what unpickling a flat Config gives: its attributes, no options
    old.__dict__.update({**OLD_DEFAULTS, "method": "tfidf-lr", "name": "tfidf-lr"})
    model.cfg = old
    joblib.dump(model, tmp_path / TfidfRuleModel.file)
    with pytest.raises(KitError, match="saved by an older kit version.*jigsaw-kit train --config tfidf-lr"):
        TfidfRuleModel.load(tmp_path, cfg)


class _Saved(FittedMethod):
    """A stand-in for contrastive's saved heads: check_saved needs only load(), the pickled config."""

    name = "contrastive"
    file = "saved.joblib"

    def fit(self, rows, work_dir=None, resume_from=None):
        return self

    def predict(self, rows, show_progress=True):
        raise NotImplementedError


def test_check_saved_compares_options_and_their_groups(tmp_path):
    cfg = load_config("cpu-contrastive")
    _Saved(cfg).save(tmp_path)
    _Saved.check_saved(tmp_path, cfg)  # the same config: fine
    for values, key in [({"tune.steps": "21"}, "tune.steps"), ({"embed_c": "2"}, "embed_c"), ({"seed": "1"}, "seed")]:
        with pytest.raises(KitError, match=rf"fitted with {key}=.* says {key}=.*mixes two runs"):
            _Saved.check_saved(tmp_path, load_config("cpu-contrastive", values))
    _Saved.check_saved(tmp_path, dataclasses.replace(cfg, extra={"note": "x"}))  # notes never count


def test_config_override_is_typed_and_validated():
    cfg = load_config("cpu-contrastive")
    assert cfg.override({"max_steps": 5}).options.tune.steps == 5
    assert cfg.options.tune.steps == 20  # a copy
    with pytest.raises(KitError, match="tune.steps must be > 0"):
        cfg.override({"tune.steps": 0})
    with pytest.raises(KitError, match="keeps its method"):
        cfg.override({"method": "hybrid"})


def test_options_match_their_method():
    assert isinstance(Config(method="tfidf-lr").options, TfidfOptions)
    assert isinstance(Config(method="hybrid").options, HybridOptions)
    with pytest.raises(KitError, match="method hybrid takes HybridOptions, got TfidfOptions"):
        Config(method="hybrid", options=TfidfOptions())


def test_loading_a_config_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from jigsaw_kit.core.config import available_configs, load_config\n"
        "[load_config(n) for n in available_configs()]\n"
        "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'sklearn', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_set_key_the_docs_show_belongs_to_a_method():
    import re

    from jigsaw_kit.core.config import OPTIONS, options_class

    from ..conftest import ROOT

    known = {*COMMON, *(k for m in OPTIONS for k in [*options_class(m).keys(), *options_class(m).LEGACY])}
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    shown = {k for p in docs for k in re.findall(r"--set ([A-Za-z_.]+)=", p.read_text(encoding="utf-8"))}
    assert "tune.steps" in shown and "knn_k" in shown  # the pattern finds them
    assert shown - {"key", "k"} <= known, shown - known
