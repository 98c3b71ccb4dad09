"""``auditkeep ingest`` run again — after it completed, after Ctrl-C, on an edited file —
never stores an event twice, and says what it did (new, already there, dropped by policy)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from test_cli import run

from auditkeep.config import load_settings, open_ledger


def _lines(n: int, start: int = 0) -> list[str]:
    # no ids, no times; every tenth line repeats the one before (a legitimate second event)
    out = []
    for i in range(start, start + n):
        j = i - 1 if i % 10 == 9 else i
        out.append(json.dumps({"actor": {"id": f"u{j % 7}"}, "action": "doc.read", "resource": {"id": f"d{j}"}}))
    return out


def _size(folder: Path, tenant: str = "acme") -> int:
    lg = open_ledger(load_settings(overrides={"data": str(folder / "auditkeep-data")}), create=False, background=False)
    try:
        return lg.head(tenant).size
    finally:
        lg.close()


def _ingest(folder: Path, name: str = "e.jsonl") -> dict[str, object]:
    r = run("ingest", name, "--tenant", "acme", "--json", cwd=folder)
    assert r.returncode == 0, r.stderr
    got: dict[str, object] = json.loads(r.stdout)
    return got


def test_a_completed_ingest_run_again_or_on_an_edited_file_stores_each_line_once(tmp_path: Path) -> None:
    lines = _lines(2500)
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    first = _ingest(tmp_path)
    assert (first["stored"], first["existing"]) == (2500, 0) and _size(tmp_path) == 2500
    again = run("ingest", "e.jsonl", "--tenant", "acme", cwd=tmp_path)
    assert again.returncode == 0 and "ingested 0 new event(s)" in again.stdout
    assert "2500 event(s) were already in the log" in again.stdout
    assert _size(tmp_path) == 2500
    # edited between runs: a line inserted at the top, one changed, one appended
    edited = [json.dumps({"actor": {"id": "new"}, "action": "doc.read"}), *lines]
    edited[100] = edited[100].replace("doc.read", "doc.write")
    edited.append(json.dumps({"actor": {"id": "last"}, "action": "doc.read"}))
    (tmp_path / "e.jsonl").write_text("\n".join(edited) + "\n")
    third = _ingest(tmp_path)
    assert (third["stored"], third["existing"]) == (3, 2499)
    assert _size(tmp_path) == 2503
    # a JSON array of the same events is recognised as well
    (tmp_path / "a.json").write_text("[" + ",".join(lines) + "]")
    assert _ingest(tmp_path, "a.json")["stored"] == 0


def _interrupted_ingest(tmp_path: Path, n: int) -> subprocess.Popen[str]:
    """``auditkeep ingest`` of ``n`` events in ``tmp_path``, sent SIGINT once its first
    batch is committed; the process, ended."""
    (tmp_path / "big.jsonl").write_text("\n".join(_lines(n)) + "\n")
    assert run("init", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditkeep.cli.main", "ingest", "big.jsonl", "--tenant", "acme"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = tmp_path / "auditkeep-data" / "log.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT size FROM logs WHERE name = 'acme'").fetchone()
        except sqlite3.Error:
            row = None
        if row and row[0] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    return proc


def test_ctrl_c_says_what_was_committed_and_a_rerun_adds_only_the_rest(tmp_path: Path) -> None:
    # On a loaded machine this test's process may be descheduled long enough for the whole
    # file to be committed before the signal is sent; then it tries again with a longer file.
    for attempt, n in enumerate((60_000, 150_000, 300_000)):
        work = tmp_path / f"attempt{attempt}"
        work.mkdir()
        proc = _interrupted_ingest(work, n)
        stdout, stderr = proc.communicate(timeout=300)
        if proc.returncode == 0 and _size(work) == n:
            continue
        break
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    committed = _size(work)
    assert 0 < committed < n
    assert f"interrupted: {committed} event(s) were committed before Ctrl-C (indexes 0..{committed - 1})" in stderr
    rest = _ingest(work, "big.jsonl")
    assert (rest["stored"], rest["existing"]) == (n - committed, committed)
    assert _size(work) == n


def test_ingest_counts_what_the_capture_policy_dropped(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("capture:\n  rules:\n    - {level: none, actions: [noise.*]}\n")
    evs = [{"actor": {"id": "a"}, "action": "noise.tick" if i % 3 == 0 else "doc.read"} for i in range(9)]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    env = {"AUDITKEEP_POLICY_FILE": str(tmp_path / "policy.yaml")}
    r = run("ingest", "e.jsonl", "--tenant", "acme", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "ingested 6 new event(s)" in r.stdout
    assert "3 event(s) dropped by the capture policy" in r.stdout
    got = json.loads(run("ingest", "e.jsonl", "--tenant", "acme", "--json", cwd=tmp_path, env=env).stdout)
    assert (got["stored"], got["existing"], got["dropped"]) == (0, 6, 3)
