"""Shared fixtures: paths, a network guard, and hand-made competition frames."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
REAL = ROOT.parent / "shared" / "data" / "jigsaw-agile-community-rules"


class NetworkAttempt(AssertionError):
    pass


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    return host in ("127.0.0.1", "::1", "localhost") or str(host).startswith("127.")


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a non-loopback connection; yields the list of attempts."""
    attempts: list = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(self, address):
        if not _is_local(address):
            attempts.append(address)
            raise NetworkAttempt(f"network access attempted: {address!r}")
        return real_connect(self, address)

    def guard_ex(self, address):
        if not _is_local(address):
            attempts.append(address)
            raise NetworkAttempt(f"network access attempted: {address!r}")
        return real_connect_ex(self, address)

    def guard_getaddrinfo(host, *args, **kwargs):
        if not _is_local((host,)):
            attempts.append(host)
            raise NetworkAttempt(f"DNS lookup attempted: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guard_getaddrinfo)
    yield attempts
    assert not attempts, f"network access attempted during the test: {attempts}"


@pytest.fixture(autouse=True)
def _isolated_embedding_cache(tmp_path_factory, monkeypatch):
    """No test reads or fills the user's embedding cache; the suite runs with it off unless a test turns it on."""
    monkeypatch.setenv("JIGSAW_KIT_CACHE_DIR", str(tmp_path_factory.mktemp("embed-cache")))
    monkeypatch.setenv("JIGSAW_KIT_EMBED_CACHE", "0")


@pytest.fixture
def real_dir() -> Path:
    if not (REAL / "train.csv").is_file():
        pytest.skip(f"real competition files not found at {REAL}")
    return REAL


RULE_A = "No spam: do not advertise."
RULE_B = "No legal advice: do not offer legal advice."


def make_train(rows: list[tuple]) -> pd.DataFrame:
    """rows: (row_id, body, rule, label, p1, p2, n1, n2)."""
    return pd.DataFrame(
        [
            {
                "row_id": r[0],
                "body": r[1],
                "rule": r[2],
                "subreddit": "sub",
                "positive_example_1": r[4],
                "positive_example_2": r[5],
                "negative_example_1": r[6],
                "negative_example_2": r[7],
                "rule_violation": r[3],
            }
            for r in rows
        ]
    )


def make_test(rows: list[tuple]) -> pd.DataFrame:
    """rows: (row_id, body, rule, p1, p2, n1, n2)."""
    return pd.DataFrame(
        [
            {
                "row_id": r[0],
                "body": r[1],
                "rule": r[2],
                "subreddit": "sub",
                "positive_example_1": r[3],
                "positive_example_2": r[4],
                "negative_example_1": r[5],
                "negative_example_2": r[6],
            }
            for r in rows
        ]
    )


def write_competition(d: Path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    train.to_csv(d / "train.csv", index=False)
    test.to_csv(d / "test.csv", index=False)
    if sample is None:
        sample = pd.DataFrame({"row_id": test["row_id"], "rule_violation": 0.5})
    sample.to_csv(d / "sample_submission.csv", index=False)
    return d


BERT = {"model_type": "bert", "hidden_size": 4}


def fake_checkpoint(
    d: Path, config: dict | str | None = None, *, weights: bytes | bool = True, files: dict[str, str] | None = None
) -> Path:
    """A tiny checkpoint folder: what resolve_model, the start-up checks and the Kaggle discovery read; never a model.

    config.json holds `config` (a dict, or raw text; default BERT), vocab.txt three tokens, model.safetensors two
    small float32 tensors with a valid header (weights=bytes: those bytes instead; False: no weights file), and
    `files` maps more relative paths to their text (sentence-transformers parts, a bundle marker, a README).
    """
    from safetensors.numpy import save_file

    d.mkdir(parents=True)
    config = BERT if config is None else config
    (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    if weights is True:
        tensors = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, dtype=np.float32)}
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    elif weights is not False:
        (d / "model.safetensors").write_bytes(weights)
    for name, text in (files or {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def kaggle_tree(root: Path, src: Path = SAMPLE) -> tuple[Path, Path]:
    """(input, working) of a fake /kaggle: the competition's three files mounted the newer way, nothing attached."""
    import shutil

    inp, working = root / "input", root / "working"
    comp = inp / "competitions" / "jigsaw-agile-community-rules"
    comp.mkdir(parents=True)
    working.mkdir()
    for f in ("train.csv", "test.csv", "sample_submission.csv"):
        shutil.copy(src / f, comp / f)
    return inp, working
