"""Every Python block of README.md and docs/ runs as written, against a real server.

Blocks of one page run in order in one namespace (as a reader follows the page), in a
folder of their own. What a page leaves to the reader is given, and only that:

- the placeholders of the server and key (``http://127.0.0.1:8700``, ``https://audit.example.com``,
  ``ak_...``, ``ak_k3y1d_s3cr3t``) become this test's server and a key of its tenant, and
  paths under ``/var/lib``, ``/var/log`` and ``/etc`` a file of the test's folder;
- the names a block uses without defining them (``event``, ``body``, ``deliver``, ...) are
  defined by its prelude below, from the page's own prose.

A block without a prelude entry that uses an unknown name fails this test: a new snippet
must run, or say what it needs.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server_support import Server, event

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "testdata"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "sources").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


# (page, a line of the block) -> code run before it: the names its page's prose supplies
PRELUDES: dict[tuple[str, str], str] = {
    ("alerts.md", "load_rules_dir"): """
import time
Path("rules").mkdir(exist_ok=True)
Path("rules/brute.yml").write_text(
    "id: brute\\nname: Brute force\\nkind: threshold\\nseverity: high\\n"
    "match: {action: user.login, outcome: failure}\\ngroup_by: [actor.id]\\nthreshold: {count: 2, window: 5m}\\n")
batch = [("acme", i, {"actor": {"id": "alice"}, "action": "user.login", "outcome": "failure",
                      "time": "2026-01-01T00:00:0%dZ" % i}) for i in range(3)]
""",
    ("api.md", "verify_inclusion"): """
import httpx
with httpx.Client(base_url=SERVER, headers={"Authorization": "Bearer " + KEY}) as c:
    eid = c.post("/v1/events", json=EVENT).json()["receipts"][0]["id"]
    proof = c.get(f"/v1/events/{eid}", params={"proof": "true"}).json()["proof"]
    vkey = c.get("/v1/pubkey").text.strip()
""",
    ("policy.md", "Pipeline.load"): """
Path("policy.yaml").write_text("capture:\\n  rules:\\n    - {level: none, actions: [noise.*]}\\n")
from auditkeep.model import Event, decode_event
event = decode_event(b'{"actor": {"id": "alice"}, "action": "k8s.pods.get", "reason": "password=hunter2"}')
events = [decode_event(b'{"actor": {"id": "bob"}, "action": "noise.tick"}')]
""",
    ("sdk.md", "auditkeep.context(actor=\"alice\""): "log = auditkeep.open('audit-data')\n",
    ("sdk.md", "async with auditkeep.AsyncClient"): "url, key = SERVER, KEY\n",
    ("sdk.md", "# Starlette / FastAPI"): "from starlette.applications import Starlette\napp = Starlette()\n",
    ("sdk.md", "# Flask (any WSGI app)"): """
import flask
from types import SimpleNamespace
app = flask.Flask("doc")
current_user = SimpleNamespace(id="alice")
""",
    ("sdk.md", "AuditHandler"): "log = auditkeep.open('audit-data')\n",
    ("auditd.md", "decode_log"): """
shutil.copy(TESTDATA / "auditd" / "sh_arp_cache_2020-11-10074812.log", "audit.log")
Path("var/lib/auditkeep").mkdir(parents=True)
Path("var/log/audit").mkdir(parents=True)
shutil.copy("audit.log", "var/log/audit/audit.log")
delivered = []
def deliver(events, errors):
    delivered.append((events, errors))
    follower.stop()   # the page follows a live log for good; this reader stops after one batch
def record_dropped(count):
    pass
""",
    ("cloudtrail.md", "parse_cloudtrail"): """
data = (TESTDATA / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json").read_bytes()
import json
record = json.loads(data.splitlines()[0])
""",
    ("kubernetes.md", "parse_k8s_payload"): """
import json
line = (TESTDATA / "kubernetes" / "audit2rbac-demo.log").read_bytes().splitlines()[0]
obj = json.loads(line)
body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [obj]}).encode()
""",
    ("opentelemetry.md", "parse_otlp_logs"): """
import json
content_type = "application/json"
body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1700000000000000000",
    "attributes": [{"key": "audit.action", "value": {"stringValue": "user.login"}},
                   {"key": "audit.actor.id", "value": {"stringValue": "alice"}}]}]}]}]}).encode()
""",
    ("verify.md", "LogReader.open"): """
import auditkeep
with auditkeep.open("auditkeep-data") as _log:   # the page's data directory, written and signed
    _log.record("acme", actor={"id": "alice"}, action="user.login")
    Path("log.vkey").write_text(_log.pubkey() + "\\n")   # what `auditkeep pubkey > log.vkey` saves
""",
    ("syslog.md", "start_syslog_servers"): """
received = []
async def ledger_append(events):
    received.extend(events)
async def quarantine(errors):
    pass
""",
}


def _prelude(page: Path, code: str) -> str:
    found = [p for (name, needle), p in PRELUDES.items() if name == page.name and needle in code]
    return "".join(found)


def _substitute(code: str, server: Server, key: str, folder: Path, pki: Path) -> str:
    for placeholder in ("http://127.0.0.1:8700", "https://audit.example.com"):
        code = code.replace(placeholder, server.url)
    code = code.replace('"ak_..."', repr(key)).replace('"ak_k3y1d_s3cr3t"', repr(key))
    code = code.replace("/etc/auditkeep/syslog.crt", str(pki / "server.crt"))
    code = code.replace("/etc/auditkeep/syslog.key", str(pki / "server.key"))
    code = re.sub(r"0\.0\.0\.0:\d+", "127.0.0.1:0", code)  # a free port, not a privileged one
    # a client of the PostgreSQL gateway: here the test database itself (a gateway passes
    # the same connection string through), so the block's Python is what runs
    code = code.replace("host=127.0.0.1 port=6432 dbname=app user=app_rw password=...", _pg_conninfo())
    return re.sub(r'"/(var/(?:lib|log)/[^"]*)"', lambda m: repr(str(folder / m.group(1))), code)


def _pg_conninfo() -> str:
    import os
    from urllib.parse import urlsplit

    u = urlsplit(os.environ.get("AUDITKEEP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    return f"host={u.hostname} port={u.port or 5432} dbname={u.path.lstrip('/')} user={u.username}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_server_tls import _cert

    d = tmp_path_factory.mktemp("pki")
    ca = _cert(d / "ca", "test ca", ca=True)
    _cert(d / "server", "127.0.0.1", ca)
    return d


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_every_page_with_python_has_its_blocks_found() -> None:
    found = {p.name: len(blocks(p)) for p in PAGES if blocks(p)}
    assert found["README.md"] == 3 and found["sdk.md"] >= 7, found


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run_as_written(page: Path, server: Server, folder: Path, pki: Path) -> None:
    key = server.key("acme", "ingest,read")
    namespace: dict[str, Any] = {
        "__name__": "__doc__", "Path": Path, "shutil": shutil, "TESTDATA": TESTDATA,
        "SERVER": server.url, "KEY": key, "EVENT": event(0),
    }
    for line, code in blocks(page):
        source = _prelude(page, code) + _substitute(code, server, key, folder, pki)
        compiled = compile(source, f"{page.name}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        try:
            result = eval(compiled, namespace)  # the project's own documentation
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        except Exception as exc:
            raise AssertionError(f"{page.name}:{line} does not run as written: {type(exc).__name__}: {exc}") from exc
    for name in ("log", "conn"):  # clients the page opened and left to the reader to close
        obj = namespace.get(name)
        if obj is not None and hasattr(obj, "close"):
            obj.close()


def test_run_it_then_the_quick_start_in_the_same_folder(tmp_path: Path) -> None:
    """The README's "Run it" and its Quick start's `init --log-id demo` agree: following one
    and then the other in one folder works (it failed on the random log id of `serve`)."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    run_it = next(line for line in readme.splitlines() if "auditkeep serve" in line and "pip install" in line)
    quick = re.search(r"^auditkeep (init --log-id \S+)", readme, re.M)
    assert quick is not None
    steps = [cmd.strip().split()[1:] for cmd in run_it.split("&&") if "auditkeep" in cmd]
    assert steps[-1][0] == "serve" and [quick.group(1).split()] == [s for s in steps if s[0] == "init"]

    def auditkeep(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
        return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    for step in steps[:-1]:
        assert auditkeep(*step).returncode == 0
    Server(tmp_path / "auditkeep-data").stop()  # `auditkeep serve` in that folder, as Run it ends
    again = auditkeep(*quick.group(1).split())
    assert again.returncode == 0 and "demo" in again.stdout, again.stderr
    other = auditkeep("init", "--log-id", "prod")
    assert other.returncode == 2 and "leave out --log-id" in other.stderr
