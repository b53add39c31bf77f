"""The contrastive method: rule pairs, a tuned encoder with its lower half frozen, the hybrid's heads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from jigsaw_kit.cli import main
from jigsaw_kit.methods.embedding.tune import rule_pairs

from ..conftest import ROOT, SAMPLE


@pytest.fixture(autouse=True)
def shared_weights(monkeypatch):
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))


def test_rule_pairs_stay_inside_a_rule_and_say_whether_labels_agree():
    rows = pd.DataFrame(
        {
            "rule": ["r"] * 4 + ["s"] * 4 + ["t"] * 3,
            "text": [f"r{i}" for i in range(4)] + [f"s{i}" for i in range(4)] + ["t0", "t1", "t2"],
            "label": [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0],  # rule t has a single negative: nothing to contrast
        }
    )
    label = dict(zip(rows["text"], rows["label"]))
    pairs = rule_pairs(rows, n=1000, seed=0)
    assert len(pairs["label"]) == 2 * 8  # a same-label and an other-label partner per row of r and s
    for a, b, sim in zip(pairs["sentence1"], pairs["sentence2"], pairs["label"]):
        assert a[0] == b[0] != "t" and a != b  # same rule, never itself, not the one-class rule
        assert sim == float(label[a] == label[b])
    assert len(rule_pairs(rows, n=5, seed=0)["label"]) == 5


@pytest.mark.slow
def test_run_tunes_the_top_layers_and_predicts_from_the_run_dir(tmp_path, no_network):
    run, out = tmp_path / "run", tmp_path / "sub.csv"
    args = ["run", "--data-dir", str(SAMPLE), "--config", "cpu-contrastive", "--max-steps", "2"]
    assert main([*args, "--run-dir", str(run), "--output", str(out)]) == 0
    base = load_file(str(ROOT / "weights" / "all-MiniLM-L6-v2" / "model.safetensors"))
    tuned = load_file(str(run / "encoder" / "model.safetensors"))

    def weight(state, layer):
        (k,) = [k for k in state if k.endswith(f"encoder.layer.{layer}.attention.self.query.weight")]
        return state[k]

    assert np.array_equal(weight(base, 0), weight(tuned, 0))  # frozen: freeze_layers 3
    assert not np.array_equal(weight(base, 5), weight(tuned, 5))  # tuned
    # a new process reloads the heads and the tuned encoder from the run dir alone
    again = tmp_path / "again.csv"
    predict = ["predict", "--processed", str(run / "processed"), "--run-dir", str(run), "--output", str(again)]
    assert main(predict) == 0
    first, second = pd.read_csv(out), pd.read_csv(again)
    assert first["row_id"].tolist() == second["row_id"].tolist()
    assert np.allclose(first["rule_violation"], second["rule_violation"], atol=1e-6)
    assert first["rule_violation"].std() > 0


@pytest.mark.parametrize(
    "precision, flags, bf16",
    [("fp32", {"amx_bf16"}, False), ("bf16", set(), True), ("auto", {"avx512_bf16"}, True), ("auto", {"avx2"}, False)],
)
def test_the_tune_runs_bf16_on_the_cpu_only_where_asked_and_auto_finds_the_units(monkeypatch, precision, flags, bf16):
    from jigsaw_kit.methods import embed_backends
    from jigsaw_kit.methods.embedding.tune import EncoderTune
    from jigsaw_kit.methods.options import TuneOptions

    monkeypatch.setattr(embed_backends, "cpu_flags", lambda: frozenset(flags))
    tune = EncoderTune(TuneOptions(precision=precision), seed=1, max_length=32)
    assert tune.cpu_bf16() is bf16
    assert tune.key_parts()["cpu_bf16"] is bf16  # a bf16 tune and an fp32 one never share a tune-cache entry
