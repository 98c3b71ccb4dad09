"""Audit of the audit: reads and key changes land in the tenant's own log; metrics count them."""

from __future__ import annotations

import time

from http_server_support import Server, event


def _wait_events(server: Server, tenant: str, action: str, n: int = 1) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    with server.client(server.admin) as c:
        while True:
            evs = c.get("/v1/events", params={"tenant": tenant, "action": action, "order": "oldest"}).json()["events"]
            if len(evs) >= n or time.monotonic() > deadline:
                return [e["event"] for e in evs]
            time.sleep(0.05)


def test_reads_are_recorded_with_key_and_filters_never_the_secret(server: Server) -> None:
    key = server.key("aud", "ingest,read")
    keyid, secret = key.split("_")[1], key.split("_", 2)[2]
    with server.client(key) as c:
        rid = c.post("/v1/events", json=event(1)).json()["receipts"][0]["id"]
        c.get("/v1/events", params={"actor": "user1", "metadata": ["k=v"], "limit": 5})
        c.get(f"/v1/events/{rid}", params={"proof": "true"})
        c.get("/v1/proofs/inclusion", params={"id": rid})
        c.get("/v1/logs/aud/tile/entries/000.p/1")
        c.get("/v1/logs/aud/tile/entries/000.p/1")
    search = _wait_events(server, "aud", "auditkeep.search")[0]
    assert search["actor"] == {"id": keyid, "type": "service", "ip": "127.0.0.1"}
    assert search["metadata"]["filters"] == {"actor": "user1", "metadata": ["k=v"]}  # type: ignore[index]
    assert search["metadata"]["limit"] == 5  # type: ignore[index]
    read = _wait_events(server, "aud", "auditkeep.event.read")[0]
    assert read["resource"] == {"type": "event", "id": rid}
    assert read["metadata"]["proof"] is True  # type: ignore[index]
    proof = _wait_events(server, "aud", "auditkeep.proof.read")[0]
    assert proof["metadata"]["proof"] == "inclusion"  # type: ignore[index]
    tiles = _wait_events(server, "aud", "auditkeep.tiles.read")
    assert len(tiles) == 1 and tiles[0]["metadata"]["reads"] == 1  # type: ignore[index]  # aggregated
    with server.client(server.admin) as c:
        everything = c.get("/v1/events", params={"tenant": "aud", "limit": 1000}).text
        assert secret not in everything
        metrics = c.get("/metrics").text
    assert 'auditkeep_audit_events_total{action="auditkeep.search",result="ok"}' in metrics
    assert secret not in server.output() and "Bearer" not in server.output()


def test_admin_reads_of_unknown_tenants_go_to_the_system_log(server: Server) -> None:
    with server.client(server.admin) as c:
        assert c.get("/v1/events", params={"tenant": "ghost"}).json()["events"] == []
        tenants_before = c.get("/metrics").text.count('tenant="ghost"')
    assert tenants_before == 0  # reading did not create a log for the tenant
    evs = _wait_events(server, "auditkeep", "auditkeep.search")
    assert any(e["metadata"]["tenant"] == "ghost" for e in evs)  # type: ignore[index]


def test_metrics_cover_ingest_rejections_auth_and_checkpoints(server: Server) -> None:
    key = server.key("met", "ingest")
    with server.client(key) as c:
        c.post("/v1/events", json=[event(i) for i in range(7)])
        c.post("/v1/events", json=[{"actor": {"id": 1}, "action": "x"}])
    with server.client() as c:
        c.get("/v1/events", headers={"Authorization": "Bearer nope"})
        assert c.get("/metrics").status_code == 401
    with server.client(server.admin) as c:
        text = c.get("/metrics").text
    for name in (
        "auditkeep_ingest_events_total{tenant=\"met\"}",
        "auditkeep_ingest_batch_events_bucket",
        "auditkeep_commit_seconds_bucket",
        'auditkeep_rejected_events_total{reason="invalid"}',
        'auditkeep_auth_failures_total{reason="malformed"}',
        'auditkeep_checkpoint_age_seconds{tenant="met"}',
        "auditkeep_sse_clients",
    ):
        assert name in text, name


def test_huge_filters_are_recorded_cut_to_fit(server: Server) -> None:
    key = server.key("audbig", "read")
    with server.client(key) as c:
        assert c.get("/v1/events", params={"text": "x" * 20_000, "metadata": [f"k{i}=v" for i in range(300)]}).status_code == 200
    ev = _wait_events(server, "audbig", "auditkeep.search")[0]
    assert len(ev["metadata"]["filters"]["text"]) <= 1001  # type: ignore[index]
    assert len(ev["metadata"]["filters"]["metadata"]) == 100  # type: ignore[index]
