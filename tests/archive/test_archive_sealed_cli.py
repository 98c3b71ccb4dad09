"""The archive commands on an encrypted store, as a user runs them: `archive verify` opens
and checks the sealed leaves with the configured master key, and without it checks the rest
and says the leaves were not opened; `restore` needs the key and the restored (encrypted)
directory verifies as partial."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from test_archive_cli import run  # type: ignore[import-not-found]

CONFIG = """
[archive]
dir = "arch"
segment_entries = 256
"""
SEG = "default/000000000000-000000000256"


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An encrypted store of 300 events archived in two segments, made once (in this
    process) for the module; each test works on its own copy of the folder."""
    folder = tmp_path_factory.mktemp("sealed")
    (folder / "auditkeep.toml").write_text(CONFIG)
    lines = [json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "doc.read", "metadata": {"i": i}}) for i in range(300)]
    (folder / "ev.jsonl").write_text("\n".join(lines) + "\n")
    assert run("init", "--encrypt", cwd=folder, process=False).returncode == 0
    assert run("ingest", "ev.jsonl", cwd=folder, process=False).returncode == 0
    (folder / "log.vkey").write_text(run("pubkey", cwd=folder, process=False).stdout)
    time.sleep(1.1)
    r = run("archive", "run", "--older-than", "1s", cwd=folder, process=False)
    assert r.returncode == 0, r.stderr
    return folder


def test_sealed_segments_from_the_cli(archived: Path, tmp_path: Path) -> None:
    shutil.copytree(archived, tmp_path, dirs_exist_ok=True)
    r = run("archive", "verify", SEG, "--key", "log.vkey", "--json", cwd=tmp_path)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["ok"] and rep["entries"] == 256 and rep["sealed"] == 0, r.stdout + r.stderr

    key = next(tmp_path.glob("*/master.key"))
    shutil.move(key, tmp_path / "kept.key")
    r = run("archive", "verify", SEG, "--key", "log.vkey", "--json", cwd=tmp_path)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["ok"] and rep["entries"] == 0 and rep["sealed"] == 256, r.stdout + r.stderr
    r = run("archive", "verify", SEG, "--key", "log.vkey", cwd=tmp_path)
    assert r.returncode == 0 and "256 leaves are sealed and were NOT opened" in r.stdout, r.stdout
    r = run("archive", "restore", SEG, "--out", "inv", cwd=tmp_path)
    assert r.returncode == 2 and "sealed" in r.stderr and not (tmp_path / "inv").exists(), r.stderr

    shutil.move(tmp_path / "kept.key", key)
    r = run("archive", "restore", SEG, "--out", "inv", "--key", "log.vkey", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "inv" / "master.key").exists()  # the restored directory is encrypted too
    assert b"doc.read" not in (tmp_path / "inv" / "log.db").read_bytes()
    r = run("verify", "--data", "inv", "--key", "log.vkey", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [t] = json.loads(r.stdout)["tenants"]
    assert t["partial"] and t["entries_checked"] == 256 and t["restored_ranges"] == [[0, 256]]


def test_segment_key_and_rotation_from_the_cli(archived: Path, tmp_path: Path) -> None:
    """`archive key` writes a segment's data key (0600, never overwritten), with which
    `archive verify --segment-key` checks the leaves without the master key; `encryption
    rotate` re-wraps the segment's key, so the new master key alone opens it afterwards."""
    from auditkeep.crypto.atrest import new_master_key, write_key_file

    shutil.copytree(archived, tmp_path, dirs_exist_ok=True)

    r = run("archive", "key", SEG, "--out", "seg.key", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "seg.key").stat().st_mode & 0o777 == 0o600
    assert run("archive", "key", SEG, "--out", "seg.key", cwd=tmp_path).returncode == 2  # never overwritten

    new_key = tmp_path / "new.key"
    write_key_file(new_key, new_master_key())
    r = run("encryption", "rotate", "--new-key-file", "new.key", cwd=tmp_path)
    assert r.returncode == 0 and "archive: 2 sealed segments" in r.stdout, r.stdout + r.stderr
    key = next(tmp_path.glob("*/master.key"))
    key.unlink()
    new_key.rename(key)
    r = run("archive", "verify", SEG, "--key", "log.vkey", "--json", cwd=tmp_path)  # the new master key opens it
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["entries"] == 256 and rep["sealed"] == 0, r.stdout + r.stderr

    key.unlink()  # no master key at all: the segment key alone opens the leaves
    r = run("archive", "verify", SEG, "--key", "log.vkey", "--segment-key", "seg.key", "--json", cwd=tmp_path)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["entries"] == 256 and rep["sealed"] == 0, r.stdout + r.stderr
