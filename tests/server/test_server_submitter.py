"""Issue 9, finding 5 over HTTP: an ingest key cannot forge the audit of the audit. The
server refuses ``auditkeep.`` actions from every key (422) and records in every leaf which
key (or the server itself, on behalf of which key) appended it; searches filter on it."""

from __future__ import annotations

from http_server_support import Server, event


def _keyid(token: str) -> str:
    return token.split("_")[1]


def test_an_ingest_key_cannot_append_the_servers_key_events(server: Server) -> None:
    ingest = server.key("sub", "ingest,read")
    admin_id = _keyid(server.admin)
    forged = {
        "actor": {"id": admin_id, "type": "service"}, "action": "auditkeep.key.create", "category": "admin",
        "outcome": "success", "resource": {"type": "apikey", "id": "aaaaaaaaaaaa"}, "source": {"service": "auditkeep-server"},
    }  # fmt: skip
    for token in (ingest, server.admin):
        for action in ("auditkeep.key.create", "auditkeep.key.revoke", "auditkeep.alert.resolved"):
            with server.client(token) as c:
                r = c.post("/v1/events", params={"tenant": "sub"}, json=[event(1), {**forged, "action": action}])
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["field"] == "action" and body["position"] == 1 and "reserved" in body["error"]
    # a submitter in the body is refused too, whatever it says
    with server.client(ingest) as c:
        r = c.post("/v1/events", json=event(2, submitter={"kind": "server", "id": admin_id}))
        assert r.status_code == 422 and r.json()["field"] == "submitter"
        # nothing of those batches landed: the only key event is the server's own
        evs = [e["event"] for e in c.get("/v1/events", params={"action": "auditkeep.key.*"}).json()["events"]]
    assert [e["action"] for e in evs] == ["auditkeep.key.create"]
    assert evs[0]["resource"]["id"] == _keyid(ingest)
    assert evs[0]["submitter"] == {"kind": "server", "id": admin_id}  # on behalf of the admin key


def test_every_leaf_names_the_key_that_appended_it(server: Server) -> None:
    a = server.key("subk", "ingest,read")
    b = server.key("subk", "ingest")
    with server.client(a) as c:
        assert c.post("/v1/events", json=[event(i) for i in range(3)]).status_code == 200
    with server.client(b) as c:
        assert c.post("/v1/events", json=event(9)).status_code == 200
    with server.client(a) as c:
        def search(**params: str) -> list[dict[str, object]]:
            r = c.get("/v1/events", params={"action": "doc.read", **params})
            assert r.status_code == 200, r.text
            return [e["event"] for e in r.json()["events"]]

        assert {e["actor"]["id"]: e["submitter"] for e in search()} == {  # type: ignore[index]
            **{f"user{i}": {"kind": "key", "id": _keyid(a)} for i in range(3)},
            "user9": {"kind": "key", "id": _keyid(b)},
        }
        assert len(search(submitter=f"key:{_keyid(b)}")) == 1
        assert len(search(submitter="key")) == 4
        assert search(submitter="server") == []
        r = c.get("/v1/events", params={"submitter": "admin"})
        assert r.status_code == 422 and r.json()["field"] == "submitter"
        # the server's record of those reads names the server, on behalf of the reading key
        reads = [e["event"] for e in c.get("/v1/events", params={"action": "auditkeep.search"}).json()["events"]]
        assert reads and all(e["submitter"] == {"kind": "server", "id": _keyid(a)} for e in reads)


def test_webhook_deliveries_name_their_key(server: Server) -> None:
    key = server.key("subw", "ingest,read")
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "0b8f5d2e-1c1e-4b9a-9f61-3c5d2b1a0e11",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/default/pods", "verb": "list",
        "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"], "objectRef": {"resource": "pods", "namespace": "default"},
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": "2026-12-05T06:00:00.000000Z",
        "stageTimestamp": "2026-12-05T06:00:00.100000Z"}]}  # fmt: skip
    with server.client(key) as c:
        r = c.post("/v1/sources/kubernetes", json=body)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        evs = [e["event"] for e in c.get("/v1/events", params={"action": "k8s.*"}).json()["events"]]
    assert [e["submitter"] for e in evs] == [{"kind": "key", "id": _keyid(key)}]


def test_the_sdk_sends_no_submitter_and_filters_by_it(server: Server) -> None:
    """The SDK's events are recorded under its key; it cannot send the reserved namespace."""
    from auditkeep.client import Client

    key = server.key("subsdk", "ingest,read")
    with Client(server.url, key) as client:
        client.record(actor={"id": "alice"}, action="invoice.approve")
        assert client.flush(30)
        page = client.search(submitter=f"key:{_keyid(key)}", action="invoice.approve")
        assert [r.event.submitter.label() for r in page.items if r.event.submitter] == [f"key:{_keyid(key)}"]
        assert client.search(submitter="server", action="invoice.approve").items == []
