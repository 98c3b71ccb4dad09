"""The archive commands on an encrypted store, as a user runs them: `archive verify` opens
and checks the sealed leaves with the configured master key, and without it checks the rest
and says the leaves were not opened; `restore` needs the key and the restored (encrypted)
directory verifies as partial."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from test_archive_cli import run  # type: ignore[import-not-found]

CONFIG = """
[archive]
dir = "arch"
segment_entries = 256
"""
SEG = "default/000000000000-000000000256"


def test_sealed_segments_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text(CONFIG)
    lines = [json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "doc.read", "metadata": {"i": i}}) for i in range(300)]
    (tmp_path / "ev.jsonl").write_text("\n".join(lines) + "\n")
    assert run("init", "--encrypt", cwd=tmp_path).returncode == 0
    assert run("ingest", "ev.jsonl", cwd=tmp_path).returncode == 0
    (tmp_path / "log.vkey").write_text(run("pubkey", cwd=tmp_path).stdout)
    time.sleep(1.1)
    r = run("archive", "run", "--older-than", "1s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
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
