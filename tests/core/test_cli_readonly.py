"""Readers on a copy of the data handed to an auditor: read-only files, no signing key, and
`verify` against the public key kept elsewhere — as a user runs the commands."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import run  # type: ignore[import-not-found]

from auditkeep.log.hashing import leaf_hash
from auditkeep.log.tiles import Frontier

N = 2000
TID = 1
RULE = """\
rules:
  - id: denied-db
    name: Denied queries
    match: {action: db.query, outcome: denied}
"""


def _events(n: int) -> str:
    lines = []
    for i in range(n):
        lines.append(json.dumps({
            "actor": {"id": f"user-{i % 20}", "name": "Bob" if i == 321 else f"User {i % 20}", "ip": "192.0.2.1"},
            "action": "db.query", "outcome": "denied" if i % 100 == 0 else "success",
            "metadata": {"seq": i},
        }))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory as a writer leaves it: events, checkpoints, a quarantined record."""
    d = tmp_path_factory.mktemp("ro")
    (d / "events.jsonl").write_text(_events(N))
    (d / "k8s.log").write_text("this is not a kubernetes audit event\n")
    (d / "rule.yml").write_text(RULE)
    assert run("init", "--log-id", "ro", cwd=d, process=False).returncode == 0
    r = run("ingest", "events.jsonl", "--tenant", "acme", cwd=d, process=False)
    assert r.returncode == 0, r.stderr
    r = run("ingest", "k8s.log", "--format", "kubernetes", "--tenant", "acme", cwd=d, process=False)
    assert r.returncode == 0, r.stderr
    r = run("pubkey", cwd=d, process=False)
    assert r.returncode == 0, r.stderr
    (d / "log.vkey").write_text(r.stdout)  # the auditor keeps this elsewhere
    return d


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Iterator[Path]:
    """The data directory copied for an auditor, without the signing key."""
    d = tmp_path / "handed-over"
    shutil.copytree(original / "auditkeep-data", d)
    (d / "signing.key").unlink()
    yield d
    _writable(d)


def _read_only(d: Path) -> None:
    for p in [d, *d.iterdir()]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(d: Path) -> None:
    for p in [d, *d.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _snapshot(d: Path) -> dict[str, tuple[str, int]]:
    """Each file's content and modification time. SQLite's shared-memory index of a WAL
    (``-shm``, not data) is left out of the times: root may map it writable whatever its mode."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), 0 if p.name.endswith("-shm") else p.stat().st_mtime_ns)
        for p in sorted(d.iterdir())
    }


def _ok(*args: str, cwd: Path, process: bool = True) -> str:
    r = run(*args, cwd=cwd, process=process)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r.stdout


def test_every_reader_works_on_a_read_only_copy_and_changes_nothing(original: Path, copy: Path) -> None:
    (copy / "index.db").unlink()  # also without the search index: one is built elsewhere
    _read_only(copy)
    before = _snapshot(copy)
    data = ("--data", str(copy))
    out = _ok("verify", "--json", "--key", "log.vkey", *data, cwd=original)  # a real process; the rest in this one
    report = json.loads(out)
    assert report["ok"] and report["trust"]["keys_from"] == "given"
    assert report["tenants"][0]["entries_checked"] == N and report["tenants"][0]["personal_fields_checked"] == 2 * N
    hits = [json.loads(x) for x in _ok("search", "-t", "acme", "--outcome", "denied", "--all", "--json", *data, cwd=original, process=False).splitlines()]
    assert sorted(h["index"] for h in hits) == list(range(0, N, 100))
    assert json.loads(_ok("show", "-t", "acme", "--index", "321", *data, cwd=original, process=False))["event"]["actor"]["name"] == "Bob"
    proof = json.loads(_ok("proof", "inclusion", "-t", "acme", "--index", "321", "--json", *data, cwd=original, process=False))
    assert proof["tree_size"] == N
    assert json.loads(_ok("proof", "consistency", "-t", "acme", "--from", "10", "--json", *data, cwd=original, process=False))["to"] == N
    assert _ok("checkpoint", "-t", "acme", *data, cwd=original, process=False) == proof["checkpoint"]
    assert "acme" in _ok("tenants", *data, cwd=original)  # its one run as a real process
    assert _ok("pubkey", *data, cwd=original, process=False) == (original / "log.vkey").read_text()
    assert _ok("pubkey", "--tenant", "acme", *data, cwd=original, process=False).startswith("auditkeep.local/ro/acme+")
    records = [json.loads(x) for x in _ok("quarantine", "list", "--json", *data, cwd=original, process=False).splitlines()]
    assert len(records) == 1
    assert _ok("quarantine", "show", records[0]["id"], *data, cwd=original, process=False).startswith("this is not")
    backtest = _ok("rules", "backtest", "rule.yml", "-t", "acme", "--json", *data, cwd=original, process=False)
    assert len(backtest.splitlines()) == N // 100
    assert _snapshot(copy) == before  # not a byte, not a file


def test_writers_still_need_the_key(original: Path, copy: Path) -> None:
    r = run("checkpoint", "-t", "acme", "--new", "--data", str(copy), cwd=original)
    assert r.returncode == 2 and "signing key" in r.stderr and "Traceback" not in r.stderr


def test_verify_says_which_key_it_trusted(original: Path, copy: Path) -> None:
    text = run("verify", "--data", str(copy), cwd=original)
    assert text.returncode == 0 and "trusted the verifier key found in the store" in text.stdout
    report = json.loads(_ok("verify", "--json", "--data", str(copy), cwd=original))
    assert report["trust"] == {
        "keys": [(original / "log.vkey").read_text().strip()],
        "keys_from": "store",
        "trusted_checkpoints": 0,
        "require_signed": False,
    }
    bad = original / "not-a-key"
    bad.write_text("hello\n")
    r = run("verify", "--key", str(bad), "--data", str(copy), cwd=original)
    assert r.returncode == 2 and "not a verifier key" in r.stderr and "Traceback" not in r.stderr


def _db(d: Path) -> sqlite3.Connection:
    return sqlite3.connect(d / "log.db")


def test_forged_event_with_rebuilt_tree_and_deleted_checkpoints(original: Path, copy: Path) -> None:
    """Finding 2: verify exited 0 here and signed a checkpoint over the forged root."""
    conn = _db(copy)
    leaves = [r[0] for r in conn.execute("SELECT leaf FROM entries WHERE tenant_id=? ORDER BY k", (TID,))]
    leaves[1234] = leaves[1234].replace(b'"seq":1234', b'"seq":4321')
    f = Frontier()
    tiles = f.append([leaf_hash(x) for x in leaves])
    with conn:
        conn.execute("UPDATE entries SET leaf=? WHERE k=?", (leaves[1234], (TID << 40) | 1234))
        conn.execute("DELETE FROM tiles")
        conn.executemany("INSERT INTO tiles VALUES(?,?,?,?)", [(TID, lv, ix, b) for (lv, ix), b in tiles.items()])
        conn.execute("UPDATE logs SET root=? WHERE tenant_id=?", (f.root(), TID))
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    r = run("verify", "--json", "--data", str(copy), cwd=original)
    assert r.returncode == 1, r.stdout
    assert any("no checkpoint of that size" in p["message"] for p in json.loads(r.stdout)["tenants"][0]["problems"])
    conn = _db(copy)
    assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0  # nothing signed
    with conn:
        conn.execute("UPDATE logs SET cp_size=0")  # the attacker covers that too
    conn.close()
    r = run("verify", "--data", str(copy), cwd=original)
    assert r.returncode == 0 and f"none of the {N} entries is covered by a signed checkpoint" in r.stderr
    r = run("verify", "--require-signed", "--data", str(copy), cwd=original)
    assert r.returncode == 1 and "unsigned:" in r.stderr


def test_edited_personal_field(original: Path, copy: Path) -> None:
    """Finding 1: verify passed while show printed the forged name."""
    conn = _db(copy)
    key = (TID << 40) | 321
    plain = json.loads(conn.execute("SELECT sealed FROM entries WHERE k=?", (key,)).fetchone()[0])
    assert plain["actor.name"] == "Bob"
    plain["actor.name"] = "Mallory"
    with conn:
        conn.execute("UPDATE entries SET sealed=? WHERE k=?", (json.dumps(plain).encode(), key))
    conn.close()
    r = run("verify", "--json", "--data", str(copy), cwd=original)
    assert r.returncode == 1
    [problem] = json.loads(r.stdout)["tenants"][0]["problems"]
    assert problem["index"] == 321 and problem["kind"] == "sealed" and "actor.name" in problem["message"]


def test_replaced_key_is_caught_with_the_key_kept_elsewhere(original: Path, copy: Path) -> None:
    """Finding 3: a new key file and verifier key in the store, every checkpoint re-signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditkeep.log.checkpoint import Checkpoint
    from auditkeep.log.note import NoteSigner, sign_note

    private = Ed25519PrivateKey.generate()
    forged = NoteSigner("auditkeep.local/ro", private).verifier_key()
    conn = _db(copy)
    with conn:
        conn.execute("UPDATE meta SET value=? WHERE key='verifier_key'", (forged,))
        conn.execute("UPDATE meta SET value=? WHERE key='verifier_keys'", (json.dumps([{"vkey": forged}]),))
        for size, root in conn.execute("SELECT size, root FROM checkpoints").fetchall():
            origin = "auditkeep.local/ro/acme"
            note = sign_note(Checkpoint(origin, size, root).body(), [NoteSigner(origin, private)])
            conn.execute("UPDATE checkpoints SET note=? WHERE size=?", (note, size))
    conn.close()
    r = run("verify", "--data", str(copy), cwd=original)
    assert r.returncode == 0 and "trusted the verifier key found in the store" in r.stdout and forged in r.stdout
    r = run("verify", "--key", "log.vkey", "--json", "--data", str(copy), cwd=original)
    assert r.returncode == 1
    problems = json.loads(r.stdout)["tenants"][0]["problems"]
    assert problems and all(p["kind"] == "checkpoint" and "no signature from a known key" in p["message"] for p in problems)


def test_a_proof_no_checkpoint_covers_gets_a_message_not_a_signature(original: Path, copy: Path) -> None:
    conn = _db(copy)
    with conn:
        conn.execute("DELETE FROM checkpoints")
        conn.execute("UPDATE logs SET cp_size=0")
    conn.close()
    r = run("proof", "inclusion", "-t", "acme", "--index", "5", "--data", str(copy), cwd=original)
    assert r.returncode == 2 and "no stored checkpoint covers 6 entries" in r.stderr and "checkpoint --new" in r.stderr
    r = run("checkpoint", "-t", "acme", "--data", str(copy), cwd=original)
    assert r.returncode == 2 and "no signed checkpoint yet" in r.stderr
    conn = _db(copy)
    assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
    conn.close()
