"""The command line on PostgreSQL: ``--db`` on every command, and ``auditkeep db``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger
from auditkeep.store.postgres_schema import SCHEMA_VERSION

pg_support = pytest.importorskip("pg_support")


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    pg_support.require_postgres()
    schema = pg_support.new_schema_name("cli")
    yield pg_support.url_for_schema(schema)
    pg_support.drop_schema(schema)


def test_every_store_command_takes_db(tmp_path: Path, pg_url: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "doc.read", "metadata": {"n": i}})
            for i in range(300)
        )
        + "\n"
    )
    r = run("--db", pg_url, "init", "--log-id", "pgcli", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "auditkeep.local/pgcli+" in r.stdout
    assert (tmp_path / "auditkeep-data" / "signing.key").exists()
    r = run("ingest", "events.jsonl", "--tenant", "acme", "--json", "--db", pg_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tree_size"] == 300
    r = run(
        "--db",
        pg_url,
        "search",
        "--tenant",
        "acme",
        "--actor",
        "u1",
        "--meta",
        "n=5",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["index"] for line in r.stdout.splitlines() if line.strip()] == [5]
    r = run("--db", pg_url, "verify", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    r = run("--db", pg_url, "tenants", cwd=tmp_path)
    assert r.returncode == 0 and "acme" in r.stdout
    # A second node: the same database and key, given as text in the environment.
    key = (tmp_path / "auditkeep-data" / "signing.key").read_text()
    other = tmp_path / "node2"
    other.mkdir()
    r = run(
        "--db",
        pg_url,
        "checkpoint",
        "--tenant",
        "acme",
        cwd=other,
        env={"AUDITKEEP_SIGNING_KEY": key},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("auditkeep.local/pgcli/acme\n300\n")
    r = run("--db", pg_url, "keys", "create", "--tenant", "acme", "--scopes", "read", "--name", "pg-key", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("--db", pg_url, "keys", "list", cwd=tmp_path)
    assert r.returncode == 0 and "pg-key" in r.stdout, r.stderr
    r = run("--db", pg_url, "db", "status", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout and "acme" in r.stdout and "entries_" in r.stdout


def test_db_migrate_and_status_on_an_empty_database(tmp_path: Path, pg_url: str) -> None:
    r = run("db", "status", "--db", pg_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "schema version  0" in r.stdout and "pending" in r.stdout
    r = run("db", "migrate", "--db", pg_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"schema version 0 -> {SCHEMA_VERSION}" in r.stdout
    r = run("db", "migrate", "--db", pg_url, cwd=tmp_path)
    assert "up to date" in r.stdout


def test_db_copy_moves_an_embedded_store(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "data"
    with Ledger.open(data) as lg:
        for i in range(3):
            lg.append(
                [
                    {
                        "actor": {"id": f"u{j % 5}", "name": f"N {j}"},
                        "action": "doc.read",
                        "metadata": {"email": f"{j}@x"},
                    }
                    for j in range(700)
                ],
                tenant=f"t{i}",
            )
        lg.store.set_cursor("alerts", 1, 650, b"s")
        heads = {h.tenant: (h.size, h.root) for h in lg.tenants()}
    r = run("db", "copy", "--from", f"sqlite://{data}", "--to", pg_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.count("identical") == 3 and "verified" in r.stdout
    r = run("db", "copy", "--data", str(data), "--to", pg_url, "--no-verify", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("skipped") == 3
    from auditkeep.store.postgres import PostgresStore

    store = PostgresStore(pg_url, max_size=2)
    try:
        assert {h.tenant: (h.size, h.root) for h in store.heads()} == heads
        assert store.cursor("alerts", 1) == (650, b"s")
    finally:
        store.close()
    # the copy is a working log: the same key appends, searches (sealed fields too), verifies
    from auditkeep.config import load_settings, open_ledger

    s = load_settings(env={}, overrides={"db": pg_url, "data": str(data)})
    with open_ledger(s, create=False) as lg:
        lg.append([{"actor": {"id": "u1"}, "action": "doc.write"}], tenant="t1")
        assert [r.index for r in lg.search("t1", metadata={"email": "7@x"}).items] == [7]
        assert lg.search("t1", actor="u1", limit=1).items[0].index == 700
        assert lg.verify().ok


def test_db_copy_refuses_a_different_log(tmp_path: Path, pg_url: str) -> None:
    with Ledger.open(tmp_path / "a") as lg:
        lg.append([{"actor": {"id": "u"}, "action": "x.y"}], tenant="t")
    with Ledger.open(tmp_path / "b") as lg:
        lg.append([{"actor": {"id": "u"}, "action": "x.y"}], tenant="t")
    assert (
        run(
            "db", "copy", "--from", f"sqlite://{tmp_path / 'a'}", "--to", pg_url, cwd=tmp_path
        ).returncode
        == 0
    )
    r = run("db", "copy", "--from", f"sqlite://{tmp_path / 'b'}", "--to", pg_url, cwd=tmp_path)
    assert r.returncode != 0
    assert "log" in r.stderr and "Traceback" not in r.stderr
