"""GET /v1/evidence on a real server: scoped to the key's tenant, bounded, audited, and the
bundle checks out with the server's verifier key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_edit import Parts  # type: ignore[import-not-found]
from http_server_support import Server, event  # type: ignore[import-not-found]

from auditkeep.evidence import verify_bundle
from auditkeep.evidence.tlogcheck import time_ns


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("evidence-srv") / "data")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


def _signed(srv: Server, key: str, size: int) -> None:
    with srv.client(key) as c:
        for _ in range(200):
            r = c.get("/v1/checkpoints/latest")
            if r.status_code == 200 and int(r.text.split("\n")[1]) >= size:
                return
            time.sleep(0.05)
    raise AssertionError("no checkpoint covering the events")


def test_bundle_of_the_callers_tenant(server: Server, tmp_path: Path) -> None:
    acme = server.key("acme", "ingest,read")
    other = server.key("globex", "ingest,read")
    with server.client(acme) as c:
        first = c.post("/v1/events", json=[event(i, actor={"id": f"u{i % 2}", "ip": "10.0.0.1"}) for i in range(30)])
        assert first.status_code == 200, first.text
        since = first.json()["receipts"][0]["received_at"]
    with server.client(other) as c:
        assert c.post("/v1/events", json=[event(i) for i in range(5)]).status_code == 200
    _signed(server, acme, 30)
    with server.client(acme) as c:
        r = c.get("/v1/evidence", params={"since": since, "reveal_subject": "u1", "actor": "u1"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        vkey = c.get("/v1/pubkey").text.strip()
    result = verify_bundle(r.content, [vkey])
    assert result.ok, result.failures
    parts = Parts.read(r.content)
    assert parts.manifest["tenant"] == "acme" and parts.manifest["filters"] == {"actor": "u1"}
    shown = [row for row in parts.rows if row.kind == "event"]
    assert len(shown) == 15 and result.summary["revealed"] == 15
    assert all(b'"tenant":"acme"' in row.leaf for row in shown)  # type: ignore[operator]
    # The read is in the tenant's own log, with what was asked for.
    with server.client(acme) as c:
        for _ in range(100):
            found = c.get("/v1/events", params={"action": "auditkeep.evidence"}).json()["events"]
            if found:
                break
            time.sleep(0.05)
    meta = found[0]["event"]["metadata"]
    assert meta["since"] == since and meta["reveal_subject"] == "u1" and meta["events"] == 15
    assert time_ns(parts.manifest["window"]["since"]) == time_ns(since)


def test_refusals(server: Server) -> None:
    acme = server.key("acme", "ingest,read")
    ingest_only = server.key("acme", "ingest")
    with server.client(acme) as c:
        assert c.get("/v1/evidence").status_code == 422
        bad = c.get("/v1/evidence", params={"since": "not a time"})
        assert bad.status_code == 422 and bad.json()["field"] == "since"
        assert c.get("/v1/evidence", params={"since": "1h", "until": "2h"}).status_code == 422
        assert c.get("/v1/evidence", params={"since": "1h", "reveal_subject": "x" * 300}).status_code == 422
    with server.client(ingest_only) as c:
        assert c.get("/v1/evidence", params={"since": "1h"}).status_code == 403
    with server.client() as c:
        assert c.get("/v1/evidence", params={"since": "1h"}).status_code == 401
    with server.client(acme) as c:  # a tenant's key names only its own tenant
        assert c.get("/v1/evidence", params={"since": "1h", "tenant": "globex"}).status_code == 403
    with server.client(server.admin) as c:
        assert c.get("/v1/evidence", params={"since": "1h", "tenant": "nobody"}).status_code == 404
