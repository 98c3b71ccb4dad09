"""The command line on bad input: exit 2 and one line starting with ``error:``, never a
traceback; exit 1 stays for integrity failures (tests/core/test_cli.py checks verify)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_cli import run

from auditkeep.cli.main import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clierr")
    lines = [json.dumps({"actor": {"id": f"u{i}"}, "action": "doc.read", "resource": {"type": "doc", "id": "r" * 70}}) for i in range(60)]
    (d / "e.jsonl").write_text("\n".join(lines) + "\n")
    assert run("ingest", "e.jsonl", "--tenant", "acme", cwd=d).returncode == 0
    (d / "dup.jsonl").write_text(lines[0] + '\n{"actor":{"id":"a"},"action":"x.y","action":"z.w"}\n')
    return d


BAD = [
    (["keys", "revoke", "bogus"], "no key bogus"),
    (["search", "-t", "acme", "--since", "9999-12-31T23:59:59Z"], "since: out of range"),
    (["search", "-t", "acme", "--until", "0001-01-01T00:00:00Z"], "until: out of range"),
    (["search", "-t", "acme", "--received-since", "99999999999d"], "received_since: out of range"),
    (["search", "-t", "acme", "--meta", "a\x01b"], "metadata"),
    (["search", "-t", "acme", "--cursor", "zzzz"], "cursor"),
    (["proof", "consistency", "-t", "acme", "--from", "1000"], "1000 is beyond the log's size 60"),
    (["proof", "consistency", "-t", "acme", "--from", "5", "--to", "1000"], "beyond the log's size 60"),
    (["proof", "inclusion", "-t", "acme", "--index", "9223372036854775808"], "--index"),
    (["proof", "inclusion", "-t", "acme", "--index", "600"], "beyond the log's size 60"),
    (["show", "-t", "acme", "--index", "70"], "no entry at index 70"),
    (["proof", "inclusion"], "give exactly one of --index or --id"),
    (["keys", "create", "--tenant", "acme", "--scopes", "read", "--expires", "99999999999y"], "expires: out of range"),
    (["keys", "create", "--tenant", "acme", "--scopes", "root"], "unknown scope"),
    (["ingest", "missing.jsonl"], "missing.jsonl"),
    (["ingest", "dup.jsonl"], "line 2: action: malformed JSON: duplicate key 'action'"),
    (["nosuchcommand"], "No such command"),
    (["search", "--limit", "0"], "--limit"),
    (["--config", "missing.toml", "tenants"], "missing.toml"),
    (["verify", "--trusted", "missing.note"], "missing.note"),
]


def _main(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The real entry point, in this process (a subprocess per case would cost seconds)."""
    for name in [n for n in os.environ if n.startswith("AUDITKEEP_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["auditkeep", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), BAD, ids=[" ".join(a)[:50] for a, _ in BAD])
def test_bad_input_exits_2_with_one_error_line(
    folder: Path, args: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = _main(args, folder, monkeypatch, capsys)
    assert code == 2, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert says in lines[0], lines[0]


def test_bad_input_in_a_real_process(folder: Path) -> None:
    r = run("keys", "revoke", "bogus", cwd=folder)
    assert (r.returncode, r.stderr) == (2, "error: no key bogus\n")


def test_searching_an_unknown_tenant_says_so(folder: Path) -> None:
    r = run("search", "--tenant", "acm", cwd=folder)
    assert r.returncode == 0 and "0 event(s)" in r.stdout
    assert "no log for tenant 'acm'" in r.stderr and "acme" in r.stderr


def test_tables_are_not_cut_at_80_columns_when_piped(folder: Path) -> None:
    r = run("search", "--tenant", "acme", "--limit", "3", cwd=folder)
    assert "r" * 70 in r.stdout  # the whole resource id on one line
    assert max(len(x) for x in r.stdout.splitlines()) > 80
