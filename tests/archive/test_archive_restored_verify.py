"""`auditkeep verify --key VKEY` on a directory restored from archive segments: the restored
ranges are checked against their segments' signed checkpoints and reported as partial; a
restored entry changed or removed afterwards fails verification, naming its index."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from test_archive_cli import run  # type: ignore[import-not-found]

CONFIG = """
[archive]
dir = "arch"
segment_entries = 256
"""


# Set-up and the JSON reports run in this process (test_archive_cli.run); the text report of
# verify on the restored directory stays a real process.
def _verify(tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    r = run("verify", "--data", "inv", "--json", *args, cwd=tmp_path, process=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_a_restored_directory_verifies_as_partial_and_tampering_is_found(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text(CONFIG)
    lines = [json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "doc.read", "metadata": {"i": i}}) for i in range(300)]
    (tmp_path / "ev.jsonl").write_text("\n".join(lines) + "\n")
    assert run("init", cwd=tmp_path, process=False).returncode == 0
    assert run("ingest", "ev.jsonl", cwd=tmp_path, process=False).returncode == 0
    (tmp_path / "log.vkey").write_text(run("pubkey", cwd=tmp_path, process=False).stdout)
    time.sleep(1.1)
    r = run("archive", "run", "--older-than", "1s", cwd=tmp_path, process=False)
    assert r.returncode == 0, r.stderr
    for seg in ("default/000000000000-000000000256", "default/000000000256-000000000300"):
        r = run("archive", "restore", seg, "--out", "inv", cwd=tmp_path, process=False)
        assert r.returncode == 0, r.stderr

    r = run("verify", "--data", "inv", "--key", "log.vkey", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "partial" in r.stdout and "0..255, 256..299" in r.stdout, r.stdout
    code, rep = _verify(tmp_path, "--key", "log.vkey")
    [t] = rep["tenants"]  # type: ignore[attr-defined]
    assert code == 0 and t["partial"] and t["restored_ranges"] == [[0, 256], [256, 300]]
    assert t["entries_checked"] == 300 and t["checkpoints_checked"] == 2 and t["problems"] == []
    # the restored directory's own key did not sign the archived log's checkpoints
    code, rep = _verify(tmp_path)
    assert code == 1

    db = sqlite3.connect(tmp_path / "inv" / "log.db")
    k, leaf = db.execute("SELECT k, leaf FROM entries ORDER BY k LIMIT 1 OFFSET 7").fetchone()
    db.execute("UPDATE entries SET leaf = ? WHERE k = ?", (leaf.replace(b'"i":7', b'"i":8'), k))
    db.commit()
    code, rep = _verify(tmp_path, "--key", "log.vkey")
    problems = [p["message"] for p in rep["tenants"][0]["problems"]]  # type: ignore[index]
    assert code == 1 and any("entry 7" in p and "changed" in p for p in problems), problems
    db.execute("UPDATE entries SET leaf = ? WHERE k = ?", (leaf, k))
    k = db.execute("SELECT k FROM entries ORDER BY k LIMIT 1 OFFSET 270").fetchone()[0]
    db.execute("DELETE FROM entries WHERE k = ?", (k,))
    db.commit()
    db.close()
    code, rep = _verify(tmp_path, "--key", "log.vkey")
    problems = [p["message"] for p in rep["tenants"][0]["problems"]]  # type: ignore[index]
    assert code == 1 and problems == ["1 restored entries are missing, the first 270"], problems
