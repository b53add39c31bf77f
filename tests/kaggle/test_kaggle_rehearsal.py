"""Kaggle submission path: budget arithmetic, bundle layout, and a rehearsal of the notebook offline.

    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_rehearsal.py                 # unit tests + rehearsal
    .venv/bin/python -m pytest -q tests/kaggle/test_kaggle_rehearsal.py -m "not slow"   # unit tests only (seconds)
    JIGSAW_KIT_WHEEL_DIR=/tmp/kwheels .venv/bin/python -m pytest -q -m kaggle    # rehearsal with the full bundle

The rehearsal builds the bundle, fakes /kaggle (input mounts + working) in a temp dir, creates a venv
that stands in for the Kaggle image, and runs kernel/jigsaw-kit-submit.ipynb there with nbclient,
network blocked, until it writes submission.csv. The stand-in image is this repo's .venv (torch,
transformers, ...) seen through a .pth file, minus the kit itself, so the notebook's
`pip install --no-index` must install the kit from the bundle and must not touch torch. With
JIGSAW_KIT_WHEEL_DIR pointing at downloaded dependency wheels (`jigsaw-kit bundle` once with network,
then copy its *.whl there), the image also lacks the bundled packages (transformers, huggingface-hub,
datasets, ...) and the bundle must supply them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from importlib.metadata import distributions
from pathlib import Path

import pandas as pd
import pytest

from jigsaw_kit import __version__
from jigsaw_kit import kaggle as kk
from jigsaw_kit.core.errors import KitError
from jigsaw_kit.evaluate.blend import blend_submissions
from jigsaw_kit.kaggle import evidence

from ..conftest import ROOT, SAMPLE, fake_checkpoint

KERNEL = ROOT / "kernel"
NOTEBOOK = KERNEL / "jigsaw-kit-submit.ipynb"
COMP = "jigsaw-agile-community-rules"

# ---------------------------------------------------------------------------------------------
# Budget arithmetic
# ---------------------------------------------------------------------------------------------

TP = kk.Throughput(train_rows_per_s=100.0, predict_rows_per_s=1000.0, max_length=256, source="test")


def _work(**kw) -> kk.Workload:
    base = dict(training_rows=36_000, test_rows=10_000, epochs=3.0, max_length=256, rows_per_step=32)
    return kk.Workload(**{**base, **kw})


def test_projection_arithmetic_is_rows_times_epochs_over_rate():
    p = kk.project(_work(), TP, overhead_s=60)
    assert p.row_passes == 108_000
    assert p.train_s == pytest.approx(1080.0) and p.predict_s == pytest.approx(10.0)
    assert p.total_s == pytest.approx(1150.0)
    steps = kk.project(_work(max_steps=10), TP)  # max_steps wins over epochs, as in the Trainer
    assert steps.row_passes == 320 and steps.train_s == pytest.approx(3.2)
    line = kk.format_projection("here", _work(), TP, p, budget_s=3600)
    assert "36,000 rows x 3 epochs / 100.0 rows/s = 18.0 min" in line and "fits" in line


def test_plan_keeps_a_run_that_fits():
    plan = kk.fit_to_budget(_work(), TP, budget_s=2000)
    assert (plan.epochs, plan.max_length, plan.max_steps, plan.changes, plan.fits) == (3.0, 256, -1, (), True)


def test_plan_cuts_epochs_first_and_says_why():
    # 36,000 rows at 100 rows/s is 360 s an epoch; 900 s left for training -> 2.5 epochs
    plan = kk.fit_to_budget(_work(), TP, budget_s=1000, overhead_s=90)
    assert plan.epochs == 2.5 and plan.max_length == 256 and plan.max_steps == -1 and plan.fits
    assert plan.projection.total_s <= 1000
    assert "epochs 3 -> 2.5" in plan.changes[0] and "budget" in plan.changes[0]


def test_plan_cuts_max_length_only_when_token_lengths_are_known():
    lengths = [300] * 50 + [100] * 50  # cost at 128 vs 256: (50*128 + 50*100) / (50*256 + 50*100) = 0.64
    assert kk.length_cost_ratio(lengths, 128, 256) == pytest.approx(11400 / 17800)
    assert kk.length_cost_ratio(None, 128, 256) == 0.5  # proportional fallback, projection only
    # one epoch needs 360 s; 300 s of room is too little at 256 tokens
    plan = kk.fit_to_budget(_work(test_rows=0), TP, budget_s=300, lengths=lengths)
    assert plan.epochs == 1.0 and plan.max_length < 256 and plan.max_steps == -1 and plan.fits
    assert plan.projection.total_s <= 300
    assert "max_length 256 ->" in plan.changes[0]
    # without lengths a cut's saving is unknown: cap the steps instead
    capped = kk.fit_to_budget(_work(test_rows=0), TP, budget_s=300)
    assert capped.max_length == 256 and capped.max_steps == 300 * 100 // 32 and capped.fits
    assert "training stops after 937 steps" in capped.changes[0]


def test_plan_never_cuts_prediction_and_says_when_it_cannot_fit():
    plan = kk.fit_to_budget(_work(test_rows=2_000_000), TP, budget_s=1000)
    assert not plan.fits and "prediction alone does not fit" in plan.changes[-1]


def test_plan_caps_a_smoke_run_steps():
    plan = kk.fit_to_budget(_work(max_steps=1000, test_rows=0), TP, budget_s=100)
    assert plan.max_steps == 100 * 100 // 32 and plan.fits


def test_full_test_projection_uses_this_data_s_new_row_rate_and_a_worst_case():
    manifest = {
        "counts": {
            "training_rows": 130,
            "test_csv_rows": 10,
            "training_rows_by_source": {
                "train_body": 100,
                "test_positive_example": 20,
                "test_negative_example+train_body": 10,
            },
        }
    }
    assert kk.training_row_counts(manifest) == (110, 20, 10)
    (label_e, expected), (label_w, worst) = kk.full_test_workloads(manifest, _work(), full_test_rows=54_000)
    assert expected.training_rows == 110 + 2 * 54_000 and expected.test_rows == 54_000
    assert worst.training_rows == 110 + 4 * 54_000 and "worst case" in label_w and "2.00" in label_e


def test_settings_from_env_and_bad_numbers():
    s = kk.NotebookSettings.from_env(env={})
    assert (s.config, s.budget_hours, s.max_steps, s.input_root) == ("kaggle-t4", 11.0, None, Path("/kaggle/input"))
    assert s.submission == Path("/kaggle/working/submission.csv")
    env = {"JIGSAW_KIT_CONFIG": "cpu-minilm", "JIGSAW_KIT_MAX_STEPS": "3", "JIGSAW_KIT_KAGGLE_WORKING": "/w"}
    s = kk.NotebookSettings.from_env(env=env)
    assert (s.config, s.max_steps, s.working) == ("cpu-minilm", 3, Path("/w"))
    with pytest.raises(KitError, match="JIGSAW_KIT_BUDGET_HOURS"):
        kk.NotebookSettings.from_env(env={"JIGSAW_KIT_BUDGET_HOURS": "eleven"})


def test_stage_log_times_each_stage():
    lines: list[str] = []
    log = kk.StageLog(start=time.time() - 5, out=lines.append)
    with log.stage("data"):
        pass
    assert "data" in log.durations and lines[0].endswith("(notebook elapsed 5 s)") and "done in" in lines[1]
    assert log.summary().startswith("stages: data")


# ---------------------------------------------------------------------------------------------
# Bundle
# ---------------------------------------------------------------------------------------------


def test_wheel_list_and_image_assumptions_cover_every_requirement():
    assert kk.unaccounted_requirements() == []
    fake = {
        "jigsaw-kit": ["transformers>=5", "newdep>=1"],
        "transformers": ["regex", "winonly; sys_platform == 'win32'"],
    }
    assert kk.unaccounted_requirements(metadata=fake.get) == ["newdep (required by jigsaw-kit: newdep>=1)"]


def _fake_wheel(d: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    p = d / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("placeholder.txt", name)
        meta = f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        z.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return p


KIT_REQUIRES = ("transformers>=5.2,<6", "datasets>=5.0", "accelerate>=1.1", "peft>=0.18", "torch>=2.4")


def _fake_checkpoint(d: Path) -> Path:
    readme = "---\nlicense: apache-2.0\n---\n# a model\n"
    return fake_checkpoint(d, files={"README.md": readme, "1_Pooling/config.json": "{}"})


@pytest.fixture
def fake_kit_build(monkeypatch):
    # The real build (pip wheel, ~5 s) runs in the rehearsal; here a placeholder keeps these tests fast.
    monkeypatch.setattr(
        "jigsaw_kit.kaggle.bundling.build_kit_wheel",
        lambda dest, root=None: _fake_wheel(dest, "jigsaw_kit", __version__, KIT_REQUIRES),
    )


def test_bundle_from_a_wheel_dir_is_ready_for_kaggle_datasets_create(tmp_path, fake_kit_build, no_network):
    wheels = tmp_path / "cache"
    wheels.mkdir()
    for w in kk.KAGGLE_WHEELS:
        _fake_wheel(wheels, w.name, kk.tested_version(w.name))
    _fake_wheel(wheels, "unrelated", "1.0")
    model = _fake_checkpoint(tmp_path / "all-MiniLM-L6-v2")
    report = kk.bundle(model, tmp_path / "out", wheel_dir=wheels, download=False, username="alice", log=lambda s: None)

    w = tmp_path / "out" / "jigsaw-kit-wheels"
    assert report.wheels_dir == w
    meta = json.loads((w / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/jigsaw-kit-wheels" and meta["title"] and meta["licenses"]
    files = {p.name for p in w.glob("*.whl")}
    assert len(files) == len(kk.KAGGLE_WHEELS) + 1 and not any("unrelated" in f for f in files)
    # ranges, not pins: the kit's own floors for what it imports directly; the kit itself is installed --no-deps
    lines = [x for x in (w / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    floors = {"transformers": "<6,>=5.2", "datasets": ">=5.0", "accelerate": ">=1.1", "peft": ">=0.18"}
    assert lines == [f"{x.name}{floors.get(x.name, '')}" for x in kk.KAGGLE_WHEELS if x.direct]
    assert "transformers<6,>=5.2" in lines and not any(x.startswith(("jigsaw-kit", "torch", "pyarrow")) for x in lines)
    manifest = json.loads((w / "BUNDLE.json").read_text())
    assert {e["name"] for e in manifest["wheels"]} == {"jigsaw-kit", *(x.name for x in kk.KAGGLE_WHEELS)}
    assert all(e["reason"] for e in manifest["wheels"]) and manifest["python"] == "3.12"
    assert manifest["pythons"] == ["3.12", "3.11", "3.13"] and not manifest["warnings"]  # py3-none-any: all three

    m = tmp_path / "out" / "jigsaw-kit-model-all-minilm-l6-v2"
    assert report.model_dir == m and (m / "1_Pooling" / "config.json").is_file()
    meta = json.loads((m / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/jigsaw-kit-model-all-minilm-l6-v2" and meta["licenses"] == [{"name": "apache-2.0"}]
    assert json.loads((m / kk.MODEL_MARKER).read_text())["name"] == "all-MiniLM-L6-v2"
    text = "\n".join(report.lines())
    assert "jigsaw-kit-wheels (" in text and " kB)" in text and "[requirements.txt: transformers" in text
    assert "[fallback]" in text and "total" in text
    assert not list((tmp_path / "out").glob("*.partial"))


def test_bundle_without_a_needed_wheel_says_how_to_fetch_it(tmp_path, fake_kit_build, no_network):
    wheels = tmp_path / "cache"
    wheels.mkdir()
    model = _fake_checkpoint(tmp_path / "m")
    with pytest.raises(
        KitError, match=r"no Python 3.12 wheel for.*pip download --no-deps --only-binary=:all: --python-version 3.12"
    ):
        kk.bundle(model, tmp_path / "out", wheel_dir=wheels, download=False, log=lambda s: None)
    assert not (tmp_path / "out" / "jigsaw-kit-wheels").exists()
    with pytest.raises(KitError, match="lacks"):
        kk.bundle(tmp_path / "cache", tmp_path / "out", kit_only=True)  # not a checkpoint


def test_find_model_dir_by_marker(tmp_path):
    for name in ("all-MiniLM-L6-v2", "deberta-v3-small"):
        d = tmp_path / "datasets" / "alice" / f"jigsaw-kit-model-{kk.slug(name)}"
        d.mkdir(parents=True)
        (d / kk.MODEL_MARKER).write_text(json.dumps({"name": name}))
    found = kk.find_model_dir(tmp_path, "all-MiniLM-L6-v2")
    assert found.name == "jigsaw-kit-model-all-minilm-l6-v2"
    with pytest.raises(KitError, match="found: .*deberta-v3-small"):
        kk.find_model_dir(tmp_path, "roberta-base")


def test_notebook_is_generated_from_make_notebook_and_metadata_is_complete():
    r = subprocess.run([sys.executable, str(KERNEL / "make_notebook.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    meta = json.loads((KERNEL / "kernel-metadata.json").read_text())
    assert meta["code_file"] == NOTEBOOK.name and (KERNEL / meta["code_file"]).is_file()
    assert meta["competition_sources"] == [COMP] and meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert (meta["kernel_type"], meta["language"]) == ("notebook", "python")
    assert meta["dataset_sources"] == ["USERNAME/jigsaw-kit-wheels", "USERNAME/jigsaw-kit-model-all-minilm-l6-v2"]


# ---------------------------------------------------------------------------------------------
# Rehearsal: the notebook in a stand-in Kaggle image, offline
# ---------------------------------------------------------------------------------------------

SITECUSTOMIZE = '''\
"""Rehearsal only: Kaggle's "internet off". Loopback stays open (the kernel's ZMQ sockets)."""
import os
import socket

_LOG = os.environ.get("REHEARSAL_NET_LOG")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _local(host):
    return isinstance(host, (str, bytes)) and str(host) in ("localhost", "::1", "") or str(host).startswith("127.")


def _refuse(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"rehearsal: internet is off ({what})")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _local(host):
        _refuse(f"getaddrinfo {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''

# Needed by the kernel itself (IPython) before the install cell runs, so the stand-in image keeps it.
KERNEL_NEEDS = {"typing-extensions"}


def _simulated_image(dest: Path, hide: set[str], site: Path | None = None, keep: set[str] | None = None) -> Path:
    """Symlinks to a site-packages (this venv's by default), minus the distributions in `hide` (and their files);
    with `keep`, minus every distribution not in it."""
    site = site or Path(sysconfig.get_paths()["purelib"])
    hidden: set[str] = set()
    for dist in distributions(path=[str(site)]):
        name = kk.canonical_name(dist.metadata["Name"])
        if name not in hide and (keep is None or name in keep):
            continue
        for f in dist.files or []:
            if f.parts and f.parts[0] != "..":
                hidden.add(f.parts[0])
    hidden |= {p.name for p in site.iterdir() if p.name.startswith("__editable__") and "jigsaw" in p.name}
    dest.mkdir(parents=True)
    for p in site.iterdir():
        if p.name not in hidden and not p.name.endswith(".pth"):
            (dest / p.name).symlink_to(p)
    return dest


def _outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", ""))
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
    return "\n".join(parts)


def rehearse(
    tmp_path: Path, monkeypatch, base_python: Path, image: Path, inp: Path, working: Path, extra: dict[str, str],
    fail_on_error: bool = True,
) -> tuple[str, Path, Path, object]:
    """The notebook's cells in order, in one kernel, as Kaggle runs them: a bare venv of base_python seeing the
    packages in `image` through a .pth, internet off, Kaggle-like environment (+ extra). Returns (the cells'
    output, the venv's site-packages, the network-attempt log, the executed notebook)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    venv = tmp_path / "image-venv"
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    vsite = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (vsite / "_kaggle_image.pth").write_text(f"{image}\n")
    (vsite / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = tmp_path / "network-attempts.log"

    # the kernel: a kernelspec running the stand-in image's python, with Kaggle-like environment
    spec = tmp_path / "jupyter" / "kernels" / "kaggle-rehearsal"
    spec.mkdir(parents=True)
    argv = [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "rehearsal", "language": "python"})
    )
    env = {
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "KAGGLE_KERNEL_RUN_TYPE": "Batch",
        "JIGSAW_KIT_KAGGLE_INPUT": str(inp),
        "JIGSAW_KIT_KAGGLE_WORKING": str(working),
        "JIGSAW_KIT_MAX_STEPS": "3",
        "JIGSAW_KIT_POLL_S": "5",
        "JIGSAW_KIT_STAGGER_S": "1",
        "JIGSAW_KIT_PROBE_STEPS": "1",
        "JIGSAW_KIT_PROBE_ROWS": "64",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "REHEARSAL_NET_LOG": str(net_log),
        "PIP_CONFIG_FILE": os.devnull,  # this machine's pip.conf adds find-links/indexes Kaggle does not have
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
        "TMPDIR": str(tmp_path),
        **extra,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in (
        "PYTHONPATH",
        "PIP_FIND_LINKS",
        "PIP_EXTRA_INDEX_URL",
        "PIP_INDEX_URL",
        "PIP_CONSTRAINT",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "VIRTUAL_ENV",
        "JIGSAW_KIT_WEIGHTS",
        "JIGSAW_KIT_CONFIG",
        "JIGSAW_KIT_MEMBERS",
        "KAGGLE_IS_COMPETITION_RERUN",
        "JIGSAW_KIT_FULL_PREVIEW",
        "CUDA_VISIBLE_DEVICES",  # the notebook finds the GPUs itself (here: none)
    ):
        if k not in env:
            monkeypatch.delenv(k, raising=False)
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=2)"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "internet is off" in probe.stderr
    net_log.unlink()
    gone = subprocess.run([str(venv / "bin" / "python"), "-c", "import jigsaw_kit"], capture_output=True, text=True)
    assert gone.returncode != 0, "the stand-in image must not already have the kit"

    # run the notebook as Kaggle would (cwd /kaggle/working)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name="kaggle-rehearsal", timeout=600, resources={"metadata": {"path": str(working)}}
    )
    try:
        client.execute()
    except CellExecutionError as e:
        nbformat.write(nb, tmp_path / "executed.ipynb")
        if fail_on_error:
            pytest.fail(f"notebook failed (executed copy: {tmp_path / 'executed.ipynb'}):\n{_outputs(nb)[-6000:]}\n{e}")
        raise
    nbformat.write(nb, tmp_path / "executed.ipynb")
    return _outputs(nb), vsite, net_log, nb


# "preview": the notebook's default, MEMBERS = "auto", with tiny random checkpoints attached beside MiniLM (an encoder
# as a Kaggle Model, a sentence encoder and a Qwen2 decoder as datasets), on "Save Version"'s small test file: the
# plan picks a member for each, all run as CPU processes after the tfidf-lr safety net, blended. "rerun": one
# config (kaggle-t4) as Kaggle's scoring rerun runs it: probe, projections and plan, then the member process.
REHEARSALS = {
    "preview": {"JIGSAW_KIT_PREVIEW_STEPS": "2"},
    "rerun": {"JIGSAW_KIT_CONFIG": "kaggle-t4", "KAGGLE_IS_COMPETITION_RERUN": "True"},
}
# in plan order: the default, then fine-tunes strongest evidence first (ties: path order)
# (the sentence encoder joins the default member as `encoders`: evidence.extra_encoders_help)
AUTO_RECIPES = {  # member -> its entry in the evidence table, whose weight the blend must use
    "cpu-contrastive": "cpu-contrastive-encoders",
    "kaggle-t4-qwen-lora-tiny-qwen-0.5b": "kaggle-t4-qwen-lora",
    "kaggle-t4-tiny-st": "kaggle-t4",
    "kaggle-t4-tiny-bert": "kaggle-t4",
    "cpu-crossenc": "cpu-crossenc",  # the kit's MiniLM as a cross-encoder fine-tune (issue 24: the fastest curve)
}
AUTO_MEMBERS = list(AUTO_RECIPES)
AUTO_WEIGHTS = {m: evidence.evidence(r)["weight"] for m, r in AUTO_RECIPES.items()}


def _attach_tiny_checkpoints(inp: Path) -> None:
    """Random checkpoints a few hundred kB each, where Kaggle would mount them; names never decide, config.json does."""
    from ..methods.test_models import make_bert, make_qwen2

    bert = make_bert(inp / "models" / "me" / "tiny-bert" / "transformers" / "default" / "1")  # a Kaggle Model
    config = json.loads((bert / "config.json").read_text())  # not the same checkpoint as tiny-st below (same seed)
    (bert / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.2}))
    make_qwen2(inp / "tiny-qwen" / "transformers" / "0.5b" / "1")  # a Kaggle Model, old layout
    st = make_bert(inp / "datasets" / "me" / "tiny-st")  # a sentence-transformers folder
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    (st / "modules.json").write_text(json.dumps(modules))
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}')


@pytest.mark.slow
@pytest.mark.kaggle
@pytest.mark.parametrize("run", list(REHEARSALS))
def test_notebook_rehearsal_offline_in_a_stand_in_kaggle_image(tmp_path, monkeypatch, run):
    t0 = time.perf_counter()
    dep_wheels = os.environ.get("JIGSAW_KIT_WHEEL_DIR")
    full = bool(dep_wheels)
    kaggle = tmp_path / "kaggle"
    inp, working = kaggle / "input", kaggle / "working"
    working.mkdir(parents=True)
    comp = inp / "competitions" / COMP  # the newer of the two mount layouts
    comp.mkdir(parents=True)
    for f in ("train.csv", "test.csv", "sample_submission.csv"):
        shutil.copy(SAMPLE / f, comp / f)

    # 1. the bundle, written straight where Kaggle would mount the two datasets
    args = ["bundle", "--model", str(ROOT / "weights" / "all-MiniLM-L6-v2"), "--out", str(inp / "datasets" / "me")]
    args += ["--wheel-dir", dep_wheels, "--no-download"] if full else ["--kit-only"]
    r = subprocess.run([sys.executable, "-m", "jigsaw_kit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "jigsaw-kit-wheels (" in r.stdout and "total" in r.stdout
    if run == "preview":
        _attach_tiny_checkpoints(inp)
    wheels = inp / "datasets" / "me" / "jigsaw-kit-wheels"
    assert (wheels / f"jigsaw_kit-{__version__}-py3-none-any.whl").is_file()
    with zipfile.ZipFile(wheels / f"jigsaw_kit-{__version__}-py3-none-any.whl") as z:
        assert "jigsaw_kit/configs/kaggle-t4.yaml" in z.namelist() and "jigsaw_kit/kaggle/notebook.py" in z.namelist()

    # 2-4. the stand-in image (this venv's packages minus the kit, and minus the bundled packages when the bundle
    #      carries them), internet off, the notebook run as Kaggle runs it
    hide = {"jigsaw-kit"} | ({kk.canonical_name(w.name) for w in kk.KAGGLE_WHEELS} - KERNEL_NEEDS if full else set())
    image = _simulated_image(tmp_path / "image-site-packages", hide)
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    out, vsite, net_log, _ = rehearse(tmp_path, monkeypatch, base_python, image, inp, working, REHEARSALS[run])
    elapsed = time.perf_counter() - t0

    # installed from the bundle, into the stand-in image, without reinstalling torch
    assert f"jigsaw-kit {__version__} from {vsite}/jigsaw_kit/__init__.py" in out
    assert "Successfully installed" in out and "jigsaw-kit" in out
    assert not (vsite / "torch").exists() and "torch-" not in out.split("Successfully installed")[-1].splitlines()[0]
    if full:
        assert (vsite / "transformers").is_dir() and (vsite / "huggingface_hub").is_dir()
    # stages with timings, the probe and the projections, including the hidden test's size
    for stage in ("data", "probe + plan", "train", "predict + submission"):
        assert f">> {stage}" in out and f"<< {stage} done in" in out
    assert "GPUs for the members: none (CPU)" in out
    # the fast member alone first: a checked submission.csv on disk before the slow members start
    assert out.index("[tfidf-lr] CPU: $ ") < out.index("before the slow members start") < out.index("wall-clock guard:")
    assert "DROPPED" not in out
    if run == "preview":  # MEMBERS = "auto": a member per attached checkpoint, each its own process on the CPU
        assert 'MEMBERS = "auto": 4 checkpoint folder(s)' in out and "PREVIEW RUN: test.csv has" in out
        assert "on failure: FAIL the notebook" in out
        assert "measured here over" not in out  # no probe
        for name in AUTO_MEMBERS:
            assert f"[{name}] CPU: $ " in out, name
        assert "--set max_steps=2" in out and "2 encoder-tuning steps (PREVIEW)" in out
        assert "PREVIEW, 2 training steps, no probe" in out and "no GPU seen, so precision auto" in out
        assert (
            "evidence: lb-proxy 0.860 here (with all-mpnet-base-v2)" in out
            and "evidence: lb-proxy not measured here" in out
        )
        assert "steps           2" in (working / "jigsaw-kit" / "kaggle-t4-tiny-bert.log").read_text()
        members = [working / "jigsaw-kit" / m / "submission.csv" for m in AUTO_MEMBERS]
        assert all(p.is_file() for p in members)
        test = pd.read_csv(SAMPLE / "test.csv")
        weights = [AUTO_WEIGHTS[m] for m in AUTO_MEMBERS]  # each member's weight from the evidence table
        want = blend_submissions(members, test, weights).set_index("row_id")["rule_violation"]
        got = pd.read_csv(working / "submission.csv").set_index("row_id")["rule_violation"]
        assert got.to_dict() == pytest.approx(want.loc[got.index].to_dict())
        assert "per-rule rank blend of " + ", ".join(f"{m} x {w:g}" for m, w in zip(AUTO_MEMBERS, weights)) in out
    else:  # one config, Kaggle's scoring rerun: the probe, the projections, the plan
        assert "PREVIEW RUN" not in out and "[kaggle-t4] CPU: $ " in out
        assert "measured here over 1 training step," in out and "54,059 test rows, worst case" in out
        assert "this data: train 3 steps x 32 rows" in out
        assert "fine-tune encoder: the config's (no jigsaw-kit-model-all-mpnet-base-v2 dataset attached" in out
        assert "on failure: DROP the member" in out and "the one member kaggle-t4" in out  # not the safety net
        assert "steps           3" in (working / "jigsaw-kit" / "kaggle-t4.log").read_text()
    # the submission
    sub = pd.read_csv(working / "submission.csv")
    sample = pd.read_csv(SAMPLE / "sample_submission.csv")
    assert sub.columns.tolist() == ["row_id", "rule_violation"]
    assert sub["row_id"].tolist() == sample["row_id"].tolist()
    assert sub["rule_violation"].between(0, 1).all() and sub["rule_violation"].notna().all()
    assert not net_log.exists(), f"network attempted: {net_log.read_text()}"
    print(f"rehearsal {run} ({'full bundle' if full else 'kit only'}) took {elapsed:.0f} s")
    print("\n".join(line for line in out.splitlines() if line.startswith(("this data", "54,059", "[", "  "))))
