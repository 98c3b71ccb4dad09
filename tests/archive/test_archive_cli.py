"""The archive commands as a user runs them, with retention archiving before it deletes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import zstandard

from server_harness import clean_env, run_cli

CONFIG = """
[archive]
dir = "arch"
segment_entries = 256

[[retention.policy]]
name = "logins"
action = "user.*"
archive_after = "1s"
delete_after = "1s"
"""


def run(*args: str, cwd: Path, process: bool = True) -> subprocess.CompletedProcess[str]:
    """``auditkeep ARGS`` as a real process, or (``process=False``: set-up, inspection, and
    repeats of a command this file already runs as a process) its main() in this process,
    saving the ~0.5 s of CPU a process spends importing auditkeep."""
    if not process:
        got = run_cli(args, env=clean_env(), cwd=cwd)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env=clean_env(), timeout=300)


def test_retention_archives_then_deletes_and_the_segment_verifies_and_restores(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text(CONFIG)
    lines = [json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "user.login" if i % 2 else "db.read",
                         "metadata": {"i": i}}) for i in range(300)]
    (tmp_path / "ev.jsonl").write_text("\n".join(lines) + "\n")
    assert run("init", cwd=tmp_path, process=False).returncode == 0
    assert run("ingest", "ev.jsonl", cwd=tmp_path, process=False).returncode == 0
    key = run("pubkey", cwd=tmp_path, process=False).stdout.strip()
    time.sleep(1.5)  # archive_after and delete_after pass
    r = run("retention", "run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["tenants"][0]
    assert plan["due"] == 150 and plan["unarchived"] == 0

    r = run("archive", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["first"], x["end"]) for x in rows] == [(0, 256), (256, 300)]
    assert all(x["complete"] and x["expired"] == 0 for x in rows)  # archived before the deletion

    seg = tmp_path / "arch/default/000000000000-000000000256.manifest.json"
    r = run("archive", "verify", str(seg), "--key", key, cwd=tmp_path)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    (tmp_path / "log.vkey").write_text(key + "\n")
    r = run("archive", "verify", "default/000000000256-000000000300", "--key", "log.vkey", "--json", cwd=tmp_path, process=False)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr

    # a changed line in a copy fails with its line and index
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / seg.name).write_bytes(seg.read_bytes())
    data_name = json.loads(seg.read_bytes())["data"]["name"]
    raw = zstandard.ZstdDecompressor().stream_reader(seg.with_name(data_name).read_bytes()).read()
    raw = raw.replace(b'\\"i\\":5}', b'\\"i\\":6}', 1)
    (bad / data_name).write_bytes(zstandard.ZstdCompressor().compress(raw))
    r = run("archive", "verify", str(bad / data_name), "--key", key, cwd=tmp_path, process=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL line 6 (index 5)" in r.stderr and "changed" in r.stderr, r.stderr
    r = run("archive", "restore", str(bad / seg.name), "--out", "inv-bad", "--key", key, cwd=tmp_path, process=False)
    assert r.returncode == 1 and not (tmp_path / "inv-bad").exists(), r.stderr

    # the deleted events are back, for investigation, in a separate data directory
    r = run("archive", "restore", "default/000000000000-000000000256", "--out", "inv", "--key", key, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("search", "--data", "inv", "--action", "user.login", "--limit", "1000", "--json", cwd=tmp_path, process=False)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 128
    r = run("show", "--data", "inv", "--index", "7", cwd=tmp_path, process=False)
    assert r.returncode == 0 and json.loads(r.stdout)["event"]["metadata"] == {"i": 7}, r.stdout + r.stderr
    r = run("archive", "restore", "default/000000000000-000000000256", "--out", "auditkeep-data", cwd=tmp_path, process=False)
    assert r.returncode == 2 and "live data directory" in r.stderr

    # nothing new: a second run archives nothing
    r = run("archive", "run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # at most the log's own records since the first run (auditkeep.archive.written, .retention.deleted)
    assert json.loads(r.stdout)["tenants"][0]["entries"] <= 2


def test_archive_after_without_target_and_verify_of_nothing(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text('[[retention.policy]]\nname = "x"\narchive_after = "1d"\n')
    r = run("archive", "list", cwd=tmp_path)
    assert r.returncode == 2 and "archive_after but no archive target" in r.stderr
    (tmp_path / "auditkeep.toml").write_text('[archive]\ndir = "arch"\n')
    r = run("archive", "verify", "nope.manifest.json", "--key", "x+y+z", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
