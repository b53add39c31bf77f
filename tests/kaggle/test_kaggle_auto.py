"""MEMBERS = "auto" (kaggle/discover.py), the evidence table (kaggle/evidence.py) and the budget's drops: pure, fast.

.venv/bin/python -m pytest -q tests/kaggle/test_kaggle_auto.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.config import available_configs, load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle import discover, evidence
from jigsaw_kit.kaggle.stages import drops_failures

from ..conftest import fake_checkpoint

_SIZES = itertools.count(32)
MASKED_LM = {"bert", "deberta-v2", "mpnet", "roberta", "modernbert", "xlm-roberta"}  # a slice of transformers' own


def checkpoint(d: Path, config: dict | str, *extra: str, weights: bool = True, marker: str | None = None) -> Path:
    """A folder shaped like a checkpoint: config.json (a dict, or raw text), a weights file, extra empty files."""
    if isinstance(config, dict):  # distinct checkpoints differ somewhere in config.json, as real ones do
        config = {"hidden_size": next(_SIZES), **config}
    files = {name: "{}" for name in extra}
    if marker:
        files[kk.MODEL_MARKER] = json.dumps({"name": marker})
    return fake_checkpoint(d, config, weights=weights, files=files)


@pytest.fixture
def attached(tmp_path) -> Path:
    """/kaggle/input with misleading folder names: only config.json and its neighbours may decide."""
    root = tmp_path / "input"
    minilm = {"model_type": "bert", "hidden_size": 384}
    checkpoint(root / "datasets" / "me" / "jigsaw-kit-model-all-minilm-l6-v2", minilm,
               "modules.json", "1_Pooling/config.json", marker="all-MiniLM-L6-v2")  # fmt: skip
    # a Kaggle Model (new layout, 6 deep), named like an LLM but a DeBERTa
    checkpoint(root / "models" / "me" / "qwen-7b" / "transformers" / "default" / "1", {"model_type": "deberta-v2"})
    qwen = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "_name_or_path": "Qwen/Qwen2.5-0.5B"}
    checkpoint(root / "deberta" / "transformers" / "x" / "2", qwen)  # the old layout; named deberta, a Qwen inside
    checkpoint(root / "datasets" / "me" / "e5", {"model_type": "bert"}, "config_sentence_transformers.json")
    checkpoint(root / "datasets" / "me" / "plain-bert", {"model_type": "roberta"})
    # MiniLM again, as a Kaggle Model: the same checkpoint, not a second member
    checkpoint(root / "all-minilm" / "transformers" / "default" / "1", minilm, "modules.json")
    gemma = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"]}  # multimodal
    checkpoint(root / "datasets" / "me" / "gemma-mm", gemma)
    checkpoint(root / "datasets" / "me" / "t5", {"model_type": "t5"})
    checkpoint(root / "datasets" / "me" / "lora-adapter", {"model_type": "llama"}, weights=False)
    checkpoint(root / "datasets" / "me" / "broken", "{ not json")
    checkpoint(root / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h" / "too-deep", {"model_type": "bert"})
    (root / "jigsaw-agile-community-rules").mkdir()
    (root / "jigsaw-agile-community-rules" / "train.csv").write_text("row_id\n")
    return root


def test_auto_plan_reads_config_json_never_folder_names(attached):
    members, found, why = discover.auto_members(attached, MASKED_LM)
    by_name = {f.path.relative_to(attached).as_posix(): f for f in found}
    assert "a/b/c/d/e/f/g/h/too-deep" not in by_name  # bounded depth
    assert not any("1_Pooling" in p for p in by_name)  # a checkpoint's own subfolders are not searched
    assert by_name["datasets/me/jigsaw-kit-model-all-minilm-l6-v2"].roles == (discover.DEFAULT,)
    assert by_name["models/me/qwen-7b/transformers/default/1"].roles == (discover.FINE_TUNE,)
    assert by_name["deberta/transformers/x/2"].roles == (discover.LORA,)
    assert by_name["datasets/me/e5"].roles == (discover.EMBED, discover.FINE_TUNE)
    copy = by_name["all-minilm/transformers/default/1"]
    assert (
        not copy.roles and copy.why.startswith("the same checkpoint as") and "jigsaw-kit-model-all-minilm" in copy.why
    )
    assert by_name["datasets/me/broken"].unusable and "cannot be read" in by_name["datasets/me/broken"].why
    for skipped, reason in (
        ("gemma-mm", "not *ForCausalLM"),
        ("t5", "neither an encoder"),
        ("lora-adapter", "no weights"),
    ):
        assert not by_name[f"datasets/me/{skipped}"].roles and reason in by_name[f"datasets/me/{skipped}"].why

    plan = {m.name: (m.config, m.overrides, m.recipe, m.weight) for m in members}
    minilm = str(attached / "datasets/me/jigsaw-kit-model-all-minilm-l6-v2")
    e5 = str(attached / "datasets/me/e5")
    # extra encoders help cpu-contrastive on lb-proxy (evidence.py, paired folds): the sentence encoder joins it
    assert plan["cpu-contrastive"] == (
        "cpu-contrastive",
        {"model": minilm, "encoders": [e5]},
        "cpu-contrastive-encoders",
        1.0,
    )
    assert not any(m.config == "cpu-hybrid" for m in members) and "they join it" in why
    assert plan["kaggle-t4-deberta-qwen-7b"][:3] == (
        "kaggle-t4-deberta-round3",
        {"model": str(attached / "models/me/qwen-7b/transformers/default/1")},
        "kaggle-t4-deberta",
    )  # a DeBERTa told by its config.json, whatever its folder says; fine-tuned on the round-3 recipe, as written
    assert plan["kaggle-t4-qwen-lora-qwen2.5-0.5b"][0] == "kaggle-t4-qwen-lora"
    assert plan["kaggle-t4-qwen-lora-qwen2.5-0.5b"][1]["template"] == "yes-no-chat"  # the family's own chat template
    assert plan["kaggle-t4-plain-bert"][0] == "kaggle-t4-round3" and plan["kaggle-t4-e5"][0] == "kaggle-t4-round3"
    assert plan["kaggle-t4-plain-bert"][2] == "kaggle-t4"  # its evidence is kaggle-t4's (evidence.py)
    # fine-tunes ordered strongest evidence first (they take the GPUs round-robin in this order)
    tuned = [m.recipe for m in members if m.config.startswith("kaggle")]
    assert tuned == sorted(tuned, key=evidence.rank) and tuned[0] == "kaggle-t4-qwen-lora"
    for m in members:  # every auto member is a loadable config
        load_config(m.config, {k: v for k, v in m.overrides.items() if k != "model"})
    lines = discover.describe(found, members, why, attached)
    assert any("UNUSABLE" in x and "broken" in x for x in lines) and any("skipped" in x and "t5" in x for x in lines)
    assert any(x.endswith("-> cpu-contrastive, kaggle-t4-e5") for x in lines)


def test_without_a_paired_gain_each_sentence_encoder_gets_a_cpu_hybrid_member(attached, monkeypatch):
    monkeypatch.setitem(evidence._BY_RECIPE["cpu-contrastive-encoders"], "paired_gain", None)
    helps, why = evidence.extra_encoders_help()
    assert not helps and "no paired lb-proxy figure" in why
    members, _, _ = discover.auto_members(attached, MASKED_LM)
    plan = {m.name: (m.config, m.overrides, m.recipe) for m in members}
    assert plan["cpu-contrastive"][1:] == (
        {"model": str(attached / "datasets/me/jigsaw-kit-model-all-minilm-l6-v2")},
        "cpu-contrastive",
    )
    assert plan["cpu-hybrid-e5"] == ("cpu-hybrid", {"model": str(attached / "datasets/me/e5")}, "cpu-hybrid-encoder")
    monkeypatch.setitem(evidence._BY_RECIPE["cpu-contrastive-encoders"], "paired_gain", (-0.001, "-0.001 on 9 folds"))
    helps, why = evidence.extra_encoders_help()
    assert not helps and "do not help" in why and "-0.001 on 9 folds" in why


def test_only_minilm_attached_gives_the_cpu_default_and_its_cross_encoder_fine_tune(tmp_path):
    checkpoint(tmp_path / "m", {"model_type": "bert"}, "modules.json", marker="all-MiniLM-L6-v2")
    members, found, why = discover.auto_members(tmp_path, MASKED_LM)
    assert [m.name for m in members] == ["cpu-contrastive", "cpu-crossenc"] and why == ""
    crossenc = members[1]
    # on MiniLM itself (never swapped for an attached base encoder), weighed 0.3 beside the default's 0.7
    assert crossenc.overrides == {"model": str(tmp_path / "m")} and crossenc.config == "cpu-crossenc"
    assert crossenc.weight == pytest.approx(0.43) and members[0].weight == 1.0
    nothing, _, _ = discover.auto_members(tmp_path / "empty", MASKED_LM)  # still planned: the plan names the fix
    assert [(m.name, m.overrides) for m in nothing] == [("cpu-contrastive", {})]
    lines = discover.describe((), nothing, "", tmp_path)
    assert any("jigsaw-kit-model-all-minilm-l6-v2) is not attached" in x for x in lines)


def test_settings_take_auto_from_the_notebook_or_the_environment(attached):
    env = {"JIGSAW_KIT_KAGGLE_INPUT": str(attached)}
    s = kk.NotebookSettings.from_env(members="auto", env=env)
    assert s.members[0].name == "cpu-contrastive" and len(s.members) == 6 and s.auto and s.unusable
    assert "cpu-crossenc" in [m.name for m in s.members]
    assert 'MEMBERS = "auto"' in s.describe() and "wall-clock guard at 11.5 h" in s.describe()
    assert (s.fast_member, s.on_failure, s.guard_hours) == ("tfidf-lr", "auto", 11.5)
    # an explicit choice still wins over "auto"
    one = kk.NotebookSettings.from_env(members="auto", env={**env, "JIGSAW_KIT_CONFIG": "tfidf-lr"})
    assert [m.config for m in one.members] == ["tfidf-lr"]
    listed = kk.NotebookSettings.from_env(members="auto", env={**env, "JIGSAW_KIT_MEMBERS": "tfidf-lr:2"})
    assert [(m.config, m.weight) for m in listed.members] == [("tfidf-lr", 2.0)] and not listed.auto
    assert len(kk.NotebookSettings.from_env(env={**env, "JIGSAW_KIT_MEMBERS": "auto"}).members) == 6
    listed = kk.NotebookSettings.from_env(members=[("cpu-hybrid", {}, 1)], env=env)
    assert [m.config for m in listed.members] == ["cpu-hybrid"]
    off = kk.NotebookSettings.from_env(env={"JIGSAW_KIT_FAST_MEMBER": "none", "JIGSAW_KIT_ON_FAILURE": "drop"})
    assert off.fast_member is None and off.on_failure == "drop"
    with pytest.raises(KitError, match="JIGSAW_KIT_ON_FAILURE"):
        kk.NotebookSettings.from_env(env={"JIGSAW_KIT_ON_FAILURE": "ignore"})


def test_failures_drop_members_only_on_the_hidden_rerun():
    s = kk.NotebookSettings.from_env(env={"KAGGLE_KERNEL_RUN_TYPE": "Batch"})
    assert not drops_failures(s, 10)  # "Save Version"'s preview: fail, the user sees it
    assert drops_failures(kk.NotebookSettings.from_env(env={"KAGGLE_IS_COMPETITION_RERUN": "True"}), 10)
    assert drops_failures(s, 54_059)  # the hidden test's size, should Kaggle's flag be missing
    interactive = kk.NotebookSettings.from_env(env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    assert not drops_failures(interactive, 54_059)
    assert drops_failures(kk.NotebookSettings.from_env(env={"JIGSAW_KIT_ON_FAILURE": "drop"}), 10)
    forced = {"JIGSAW_KIT_ON_FAILURE": "fail", "KAGGLE_IS_COMPETITION_RERUN": "1"}
    assert not drops_failures(kk.NotebookSettings.from_env(env=forced), 10)


def test_evidence_table_is_complete_and_its_docs_table_generated():
    configs = set(available_configs())
    ranks = [e["evidence_rank"] for e in evidence.EVIDENCE]
    assert len(set(ranks)) == len(ranks) and len({e["recipe"] for e in evidence.EVIDENCE}) == len(ranks)
    for e in evidence.EVIDENCE:
        assert e["config"] in configs, e
        assert e["lb_proxy"] is None or 0.5 < e["lb_proxy"] < 1
        assert e["lb_proxy_cmd"].startswith("jigsaw-kit cv ") and "--scheme lb-proxy" in e["lb_proxy_cmd"]
        assert evidence.LEADERBOARD_DOC in e["leaderboard"] and e["weight"] > 0 and e["projected"]
        assert e["weight_source"].startswith(evidence.FITTED) or e["weight_source"] in (
            evidence.PLACEHOLDER,
            evidence.ON_CURVE,
        )
    measured = {e["recipe"]: e["lb_proxy"] for e in evidence.EVIDENCE}
    assert (measured["tfidf-lr"], measured["cpu-hybrid"], measured["cpu-contrastive"]) == (0.831, 0.856, 0.859)
    assert measured["cpu-hybrid-encoder"] == 0.851 and measured["kaggle-t4"] is None
    assert measured["cpu-minilm"] == 0.763  # 3 folds, as its note says
    assert "lb-proxy 0.859 here" in evidence.summary("cpu-contrastive")
    assert "placeholder" in evidence.summary("kaggle-t4-deberta") and "judged" in evidence.summary("kaggle-t4")
    assert "no entry" in evidence.summary("cpu-hybrid-knn") and evidence.rank("cpu-hybrid-knn") == evidence.WEAKEST_RANK
    docs = (Path(__file__).resolve().parents[2] / "docs" / "kaggle.md").read_text(encoding="utf-8")
    assert evidence.markdown_table() in docs  # kernel/make_notebook.py writes it; --check is run in the rehearsal tests


TP = kk.Throughput(train_rows_per_s=100.0, predict_rows_per_s=1000.0, max_length=256, source="test")


def _contender(name: str, rank: int, device: str | None, rows: int = 36_000) -> kk.Contender:
    work = kk.Workload(training_rows=rows, test_rows=1000, epochs=3.0, max_length=256, rows_per_step=32)
    return kk.Contender(name, rank, device, work, TP)


def test_budget_cuts_then_drops_the_weakest_evidence_on_a_crowded_gpu():
    # alone, one epoch of 36,000 rows is 360 s; 3 epochs 1080 s (+1 s predict)
    plans, dropped = kk.choose_within_budget([_contender("a", 3, "0"), _contender("b", 5, "1")], budget_s=2000)
    assert not dropped and plans["a"].epochs == 3.0 and not plans["a"].changes
    # two on GPU 0 run at half speed: 720 s an epoch each; 1000 s leaves 1.3 epochs -> a cut, no drop
    plans, dropped = kk.choose_within_budget([_contender("a", 3, "0"), _contender("c", 5, "0")], budget_s=1000)
    assert not dropped and plans["a"].epochs == plans["c"].epochs == 1.3
    # 600 s: under one epoch each while sharing -> the weaker (rank 5) goes, the other gets the GPU back
    plans, dropped = kk.choose_within_budget([_contender("c", 5, "0"), _contender("a", 3, "0")], budget_s=600)
    assert [n for n, _ in dropped] == ["c"] and "weakest evidence" in dropped[0][1] and "under 1 epoch" in dropped[0][1]
    assert plans["a"].epochs == 1.6 and "c" not in plans  # alone again: 576 s of training fit
    # alone on its GPU a step cap is kept (it trains on what fits); nothing fits at all -> dropped
    plans, dropped = kk.choose_within_budget([_contender("a", 3, "0")], budget_s=300)
    assert not dropped and plans["a"].max_steps > 0
    plans, dropped = kk.choose_within_budget([_contender("a", 3, "0"), _contender("b", 5, "1")], budget_s=0.5)
    assert {n for n, _ in dropped} == {"a", "b"} and not plans


def test_the_plan_stage_drops_the_weakest_fine_tune_and_hands_the_cuts_to_the_others(tmp_path, capsys):
    from types import SimpleNamespace

    from jigsaw_kit.kaggle.stages import _budget

    manifest = {"counts": {"training_rows": 36_000, "test_csv_rows": 1000, "training_rows_by_source": {}}}
    data = SimpleNamespace(manifest=manifest)
    settings = kk.NotebookSettings(working=tmp_path, budget_hours=600 / 3600, fast_member=None)
    probes = []
    for name, config, rank in (("qwen", "kaggle-t4-qwen-lora", 3), ("bert", "kaggle-t4", 5)):
        run = kk.MemberRun(kk.Member(name, config, {}, 1.0, config), "transformer", "0", None, {}, tmp_path / name)
        cfg = load_config(config)
        probes.append((run, cfg, data, kk.Contender(name, rank, "0", kk.budget.workload(cfg, 36_000, 1000), TP)))
    # no overhead: 600 s left, of which the plan fills PLAN_SHARE (480 s)
    _budget(probes, settings, SimpleNamespace(elapsed=lambda: -kk.budget.RESERVE_S))
    (qwen, _, _, _), (bert, _, _, _) = probes
    assert (qwen.status, bert.status) == ("planned", "dropped")
    assert bert.reason.startswith("over the budget of 8.0 min: qwen would train under 1 epoch with 2 fine-tunes")
    # alone again its one epoch fits uncut: 36,000 rows x 320/256 tokens / 100 rows/s = 450 s
    assert qwen.overrides == {} and qwen.note.startswith("fine-tune ") and "projected this data 7.5 min" in qwen.note
    out = capsys.readouterr().out
    assert "DROPPED: bert (kaggle-t4, GPU 0): over the budget" in out and "--- qwen: plan" in out


# The round-3 recipe as discover wrote it in code before it became the named configs: they must run the same.
ROUND3 = {"template": "rule-body-urls", "upsample_test_examples": 2, "learning_rate": 2e-5}


@pytest.mark.parametrize(
    "config, base", [("kaggle-t4-round3", "kaggle-t4"), ("kaggle-t4-deberta-round3", "kaggle-t4-deberta")]
)
def test_the_round3_configs_are_their_base_config_with_the_leaderboard_recipe(config, base):
    import dataclasses

    attached = {"model": "/kaggle/input/some-encoder"}
    cfg = load_config(config, attached)
    assert dataclasses.replace(cfg, name=base) == load_config(base, {**attached, **ROUND3})
