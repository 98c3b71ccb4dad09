"""The command line on a 10,000-event file, as a user runs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from server_harness import run_cli

ROOT = Path(__file__).resolve().parents[2]
N = 10_000


def run(
    *args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None, process: bool = True
) -> subprocess.CompletedProcess[str]:
    """``auditkeep ARGS`` as a real process, or (``process=False``) its main() in this process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    full_env.update(env or {})
    if not process:
        got = run_cli(args, env=full_env, cwd=cwd, input=stdin)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    proc = subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args],
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
    return proc


def _events_file(path: Path, n: int) -> None:
    lines = []
    for i in range(n):
        ev = {
            "time": f"2024-05-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            "actor": {"id": f"user-{i % 50}", "ip": f"10.0.{i % 250}.1"},
            "action": ["user.login", "db.query", "file.read"][i % 3],
            "outcome": "failure" if i % 17 == 0 else "success",
            "resource": {"type": "doc", "id": f"d{i % 100}"},
            "metadata": {"seq": i, "note": "rotate keys" if i == 4242 else "routine"},
        }
        lines.append(json.dumps(ev))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    _events_file(d / "events.jsonl", N)
    r = run("init", "--log-id", "clitest", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "auditkeep.local/clitest+" in r.stdout
    r = run("ingest", "events.jsonl", "--tenant", "acme", "--json", cwd=d)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary == {**summary, "tenant": "acme", "events": N, "first_index": 0, "last_index": N - 1, "tree_size": N}
    return d


def test_pubkey_matches_init(workdir: Path) -> None:
    r = run("pubkey", cwd=workdir)
    assert r.returncode == 0 and r.stdout.startswith("auditkeep.local/clitest+")


def test_search_filters_and_json(workdir: Path) -> None:
    r = run("search", "--tenant", "acme", "--actor", "user-7", "--action", "db.*", "--limit", "5", "--json", cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 5
    assert all(x["event"]["actor"]["id"] == "user-7" and x["event"]["action"] == "db.query" for x in rows)
    r = run("search", "-t", "acme", "-q", "rotate keys", "--json", cwd=workdir)
    assert [json.loads(x)["index"] for x in r.stdout.splitlines()] == [4242]
    r = run("search", "-t", "acme", "--meta", "seq=17", "--json", cwd=workdir)
    assert [json.loads(x)["event"]["metadata"]["seq"] for x in r.stdout.splitlines()] == [17]
    r = run("search", "-t", "acme", "--outcome", "failure", "--limit", "3", cwd=workdir)
    assert r.returncode == 0 and "failure" in r.stdout and "next page: --cursor" in r.stdout


def test_proofs_verify_with_the_documented_script(workdir: Path) -> None:
    r = run("proof", "inclusion", "-t", "acme", "--index", "4242", "--json", "--leaf-out", "leaf.bin", cwd=workdir)
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert set(proof) == {"tenant", "index", "tree_size", "leaf_hash", "hashes", "checkpoint"}
    assert proof["tree_size"] == N and all(len(h) == 64 for h in proof["hashes"])
    (workdir / "proof.json").write_text(r.stdout)
    (workdir / "log.vkey").write_text(run("pubkey", cwd=workdir).stdout)
    check = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "verify_proof.py"), "log.vkey", "proof.json", "leaf.bin"],
        cwd=workdir, capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "OK: entry 4242 is in auditkeep.local/clitest/acme at tree size 10000" in check.stdout
    r = run("proof", "consistency", "-t", "acme", "--from", "100", "--json", cwd=workdir)
    c = json.loads(r.stdout)
    assert set(c) == {"tenant", "from", "to", "hashes", "checkpoint"} and c["from"] == 100 and c["to"] == N


def test_checkpoint_and_show(workdir: Path) -> None:
    r = run("checkpoint", "--tenant", "acme", cwd=workdir)
    lines = r.stdout.split("\n")
    assert lines[0] == "auditkeep.local/clitest/acme" and lines[1] == str(N) and lines[4].startswith("\u2014 auditkeep.local/clitest/acme ")
    r = run("show", "--index", "3", "-t", "acme", "--leaf", cwd=workdir)
    leaf = json.loads(r.stdout)
    assert leaf["metadata"]["seq"] == 3 and "ip" not in leaf["actor"] and "actor.ip" in leaf["sealed"]


def test_data_option_after_subcommand_and_env(workdir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path
    r = run("verify", "--data", str(workdir / "auditkeep-data"), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    r = run("--data", str(workdir / "auditkeep-data"), "tenants", cwd=elsewhere)
    assert "acme" in r.stdout
    r = run("tenants", cwd=elsewhere, env={"AUDITKEEP_DATA": str(workdir / "auditkeep-data")})
    assert "acme" in r.stdout
    r = run("search", cwd=elsewhere)
    assert r.returncode == 2 and "auditkeep init" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_is_rejected_whole_with_its_line(tmp_path: Path) -> None:
    good = json.dumps({"actor": {"id": "a"}, "action": "x.y"})
    (tmp_path / "bad.jsonl").write_text("\n".join([good, good, "", good, '{"actor": {"id": "a"}, "action": "x", "time": "2024-01-01T00:00:00"}', good]) + "\n")
    r = run("ingest", "bad.jsonl", cwd=tmp_path)
    assert r.returncode == 2
    assert "line 5: time: expected an RFC 3339 timestamp with a timezone" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("tenants", cwd=tmp_path)
    assert "default" not in r.stdout
    (tmp_path / "trunc.jsonl").write_text(good + "\n" + good[:-5] + "\n")
    r = run("ingest", "trunc.jsonl", cwd=tmp_path)
    assert r.returncode == 2 and "line 2: malformed JSON" in r.stderr


def test_ingest_from_stdin_and_json_array(tmp_path: Path) -> None:
    evs = [{"actor": {"id": "s"}, "action": "stdin.read", "metadata": {"i": i}} for i in range(5)]
    r = run("ingest", "-", cwd=tmp_path, stdin=("\n".join(json.dumps(e) for e in evs)).encode())
    assert r.returncode == 0, r.stderr and "ingested 5 events" in r.stdout
    (tmp_path / "arr.json").write_text(json.dumps([{**e, "action": "array.read"} for e in evs]))
    r = run("ingest", "arr.json", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["first_index"] == 5


def test_verify_reports_tampering_with_exit_1(workdir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(workdir / "auditkeep-data", copy)
    conn = sqlite3.connect(copy / "log.db")
    k = (1 << 40) | 777
    leaf = conn.execute("SELECT leaf FROM entries WHERE k=?", (k,)).fetchone()[0]
    with conn:
        conn.execute("UPDATE entries SET leaf=? WHERE k=?", (leaf.replace(b'"seq":777', b'"seq":778'), k))
    conn.close()
    r = run("verify", "--data", str(copy), cwd=tmp_path)
    assert r.returncode == 1
    assert "index 777" in r.stdout + r.stderr


def test_reindex_rebuilds_search_from_the_log(tmp_path: Path) -> None:
    evs = [{"actor": {"id": f"u{i % 3}"}, "action": "doc.read", "reason": f"word{i}"} for i in range(50)]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(e) for e in evs))
    assert run("ingest", "e.jsonl", cwd=tmp_path).returncode == 0
    before = run("search", "--actor", "u1", "--json", "--limit", "100", cwd=tmp_path).stdout
    (tmp_path / "auditkeep-data" / "index.db").unlink()  # the projection is disposable
    r = run("reindex", cwd=tmp_path)
    assert r.returncode == 0 and "reindexed 50 events" in r.stdout, r.stderr
    assert run("search", "--actor", "u1", "--json", "--limit", "100", cwd=tmp_path).stdout == before
    got = run("search", "-q", "word7", "--json", cwd=tmp_path).stdout.splitlines()
    assert [json.loads(x)["event"]["reason"] for x in got] == ["word7"]
