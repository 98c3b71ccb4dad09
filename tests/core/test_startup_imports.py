"""What an auditkeep process imports before it does anything: the suite and its users start
hundreds of them (the CLI, ``serve`` and its children), and each module a command does not
use costs every start (``--help`` took ~0.8 s of CPU when it loaded them all;
benchmarks/bench_startup.py measures it). Each test runs a fresh interpreter and looks at
``sys.modules`` when it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Heavy stacks that only some commands need: the server (Starlette, uvicorn), PostgreSQL's
# driver, the archive, evidence bundles (Jinja2), retention, the console, the SDK's httpx.
NOT_AT_START = (
    "psycopg",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
    "auditkeep.server",
    "auditkeep.archive",
    "auditkeep.evidence",
    "auditkeep.retention.run",  # (the settings read the policies: retention.policy)
    "auditkeep.console",
    "auditkeep.gateway",
    "auditkeep.alerts",
)

_REPORT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
)


def _modules(code: str, cwd: Path) -> set[str]:
    """The modules loaded when ``code`` (run in a new interpreter) has ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    proc = subprocess.run([sys.executable, "-c", _REPORT + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    line = proc.stderr.rsplit("\nMODULES ", 1)
    assert len(line) == 2, proc.stderr
    return set(line[1].split())


def _cli(*args: str) -> str:
    return f"sys.argv = ['auditkeep', *{list(args)!r}]\nfrom auditkeep.cli.main import main\nmain()\n"


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_the_module_and_help_load_no_command_stack(tmp_path: Path) -> None:
    for code in ("import auditkeep.cli.main\n", _cli("--help")):
        modules = _modules(code, tmp_path)
        assert "auditkeep.cli.main" in modules  # the check looks at the right process
        assert _loaded(modules, NOT_AT_START) == [], code
        # the commands' modules too: --help lists them from cli/main.py's table
        assert _loaded(modules, ("auditkeep.cli.serve", "auditkeep.cli.verify", "auditkeep.ledger.ledger",
                                 "auditkeep.retention", "auditkeep.store.sqlite")) == []


def test_init_and_pubkey_on_sqlite_load_no_server_and_no_postgres_driver(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    init = _modules(_cli("init", "--data", data), tmp_path)
    assert "auditkeep.store.sqlite" in init  # it did open the store
    assert _loaded(init, ("psycopg", "starlette", "uvicorn", "auditkeep.server", "auditkeep.archive",
                          "auditkeep.evidence", "auditkeep.retention.run", "auditkeep.console.app")) == []
    pubkey = _modules(_cli("pubkey", "--data", data, "--tenant", "acme"), tmp_path)
    assert "auditkeep.ledger.reader" in pubkey
    assert _loaded(pubkey, NOT_AT_START) == []


def test_verify_on_sqlite_loads_no_server_and_no_postgres_driver(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    _modules(_cli("init", "--data", data), tmp_path)
    modules = _modules(_cli("verify", "--data", data), tmp_path)
    assert "auditkeep.ledger.verify" in modules
    assert _loaded(modules, ("psycopg", "starlette", "uvicorn", "auditkeep.server", "auditkeep.evidence.build",
                             "jinja2", "auditkeep.retention.run")) == []


@pytest.mark.parametrize("child", ["auditkeep.server.projection", "auditkeep.server.alerts_process"])
def test_the_servers_children_do_not_import_the_server(tmp_path: Path, child: str) -> None:
    # run as `python -m child`: the package auditkeep.server is imported first
    modules = _modules(f"import {child}\n", tmp_path)
    assert child in modules
    assert _loaded(modules, ("starlette", "uvicorn", "psycopg", "auditkeep.server.app", "auditkeep.archive",
                             "auditkeep.evidence", "auditkeep.console", "jinja2")) == []


def test_the_embedded_follower_loads_no_postgres_driver_and_no_ledger(tmp_path: Path) -> None:
    modules = _modules("import auditkeep.ledger.follower\n", tmp_path)
    assert _loaded(modules, ("psycopg", "auditkeep.ledger.ledger", "auditkeep.ledger.reader",
                             "auditkeep.server", "httpx")) == []


def test_the_gateways_ledger_child_loads_no_proxy_guardrails_or_sdk(tmp_path: Path) -> None:
    modules = _modules("import auditkeep.gateway.sink_process\n", tmp_path)
    assert _loaded(modules, ("auditkeep.gateway.guardrails", "auditkeep.gateway.approvals",
                             "auditkeep.gateway.postgres.server", "auditkeep.alerts", "httpx", "yaml")) == []
