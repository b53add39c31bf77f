"""What the notebook does about Kaggle's image: wheels per interpreter, the cards it finds, modules that cannot import.

    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_image.py
"""

from __future__ import annotations

import sys

import pytest

from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.config import load_config
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.kaggle.bundling import installs_on
from jigsaw_kit.methods import method_class

PYARROW = "pyarrow-26.0.1-cp{v}-cp{v}-manylinux_2_28_x86_64.whl"


@pytest.mark.parametrize(
    ("filename", "pythons"),
    [
        (PYARROW.format(v=311), {"3.11"}),  # the 2 wheels of the old bundle that 3.12 refused
        (PYARROW.format(v=312), {"3.12"}),
        ("regex-2026.11.15-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", {"3.13"}),
        ("tokenizers-0.23.3-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", {"3.11", "3.12", "3.13"}),
        ("transformers-5.23.0-py3-none-any.whl", {"3.11", "3.12", "3.13"}),
        ("pyarrow-26.0.1-cp312-cp312-macosx_12_0_arm64.whl", set()),  # another platform
        ("x-1.0-cp312-cp312-manylinux_2_39_x86_64.whl", set()),  # needs a newer glibc than Ubuntu 22.04's
    ],
)
def test_which_interpreters_a_wheel_installs_on(filename, pythons):
    assert {py for py in ("3.11", "3.12", "3.13") if installs_on(filename, py)} == pythons


def test_a_p100_is_refused_at_start_with_the_fix_and_dropped_on_the_rerun():
    cards = [("0", "Tesla P100-PCIE-16GB", 6.0, 16 * 2**30)]
    with pytest.raises(KitError, match=r"GPU 0 Tesla P100-PCIE-16GB \(sm_60\).*no longer runs.*GPU T4 x2"):
        kk.NotebookSettings().with_accelerator(["0"], cards)
    s, gpus = kk.NotebookSettings(rerun=True).with_accelerator(["0"], cards)
    assert gpus == [] and "P100" in s.gpu_refused and not s.bf16


@pytest.mark.parametrize(
    ("cards", "bf16"),
    [
        ([("0", "Tesla T4", 7.5, 15360 * 2**20), ("1", "Tesla T4", 7.5, 15360 * 2**20)], False),  # fp16, as configs say
        ([("0", "NVIDIA A100-SXM4-40GB", 8.0, 40 * 2**30)], True),
        ([("0", "NVIDIA H100", 9.0, 80 * 2**30), ("1", "Tesla T4", 7.5, 15 * 2**30)], False),  # bf16 only on all
        (None, False),  # nvidia-smi could not say
    ],
)
def test_newer_cards_run_bf16(cards, bf16):
    gpus = [c[0] for c in cards] if cards else ["0"]
    s, kept = kk.NotebookSettings().with_accelerator(gpus, cards)
    assert kept == gpus and s.bf16 is bf16 and len(s.gpu_bytes) == len(cards or [])


def test_gpu_cards_parses_nvidia_smi_and_says_when_it_cannot():
    two = [("0", "Tesla T4", 7.5, 15360 * 2**20), ("1", "Tesla T4", 7.5, 15360 * 2**20)]
    assert kk.gpu_cards(lambda: "0, Tesla T4, 7.5, 15360\n1, Tesla T4, 7.5, 15360\n") == two
    assert kk.gpu_cards(lambda: "0, Tesla T4, [N/A], 15360\n") is None and kk.gpu_cards(lambda: None) is None


def test_each_method_names_the_modules_it_imports():
    assert method_class("tfidf-lr").imports(load_config("tfidf-lr")) == ("yaml", "sklearn")
    assert "sentence_transformers" in method_class("contrastive").imports(load_config("cpu-contrastive"))
    lora, full = load_config("kaggle-t4-qwen-lora"), load_config("kaggle-t4")
    assert "peft" in method_class("transformer").imports(lora)
    assert "accelerate" in method_class("transformer").imports(full)
    assert "peft" not in method_class("transformer").imports(full)


def test_settings_carry_the_import_check_and_say_what_failed():
    stack = {"torch": "ModuleNotFoundError: No module named 'torch'", "yaml": None, "sklearn": None}
    s = kk.NotebookSettings.from_env(env={}, members=[("tfidf-lr", {}, 1.0)], stack=stack)
    assert s.broken == (("torch", "ModuleNotFoundError: No module named 'torch'"),)
    assert "cannot import torch: ModuleNotFoundError" in s.describe()



def test_a_method_whose_module_cannot_import_is_a_kit_error_naming_it(monkeypatch):
    import builtins

    from jigsaw_kit.core.errors import KitError as Err

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(name, *args, **kwargs)

    for mod in [m for m in list(sys.modules) if m.startswith("jigsaw_kit.methods.transformer")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(Err, match=r"method 'transformer' needs torch, which cannot be imported here"):
        method_class("transformer")
