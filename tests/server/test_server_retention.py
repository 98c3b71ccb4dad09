"""Retention under `auditkeep serve` and the /v1/holds API, against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from http_server_support import Server

CONFIG = """
[retention]
interval = 1.0

[[retention.policy]]
name = "logins"
action = "user.*"
delete_after = "1s"
"""


def test_background_retention_holds_and_expired_status(make_server: Callable[..., Server], tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text(CONFIG)
    srv = make_server(data=tmp_path / "data")
    admin = srv.key("acme", "admin,ingest,read")
    other = srv.key("other", "admin")
    with srv.client(admin) as c:
        r = c.post("/v1/holds", json={"actor": "bob", "reason": "case 42"})
        assert r.status_code == 201, r.text
        hold = r.json()
        assert hold["tenant"] == "acme" and hold["actor"] == "bob"
        assert c.post("/v1/holds", json={"reason": ""}).status_code == 422
        assert c.post("/v1/holds", json={"reason": "x", "colour": "red"}).status_code == 422
        assert c.post("/v1/holds", content=b"{").status_code == 400
        assert c.post("/v1/holds", json={"reason": "x" * 1001}).status_code == 422
        ids = []
        for who in ("alice", "bob"):
            r = c.post("/v1/events", json={"actor": {"id": who}, "action": "user.login"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["receipts"][0]["id"])
        # the background run expires alice's login once it is 1 s old; bob's is held
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = c.get(f"/v1/events/{ids[0]}")
            if r.status_code == 410:
                break
            time.sleep(0.2)
        assert r.status_code == 410, r.text
        body = r.json()
        assert body["status"] == "expired" and len(body["leaf_hash"]) == 64
        assert c.get(f"/v1/events/{ids[1]}").status_code == 200
        proof = c.get("/v1/proofs/inclusion", params={"index": body["index"]})
        assert proof.status_code == 200 and proof.json()["leaf_hash"] == body["leaf_hash"]
        records = c.get("/v1/events", params={"action": "auditkeep.retention.deleted"}).json()["events"]
        assert records and records[0]["event"]["metadata"]["count"] >= 1

        assert [h["id"] for h in c.get("/v1/holds").json()["holds"]] == [hold["id"]]
    with srv.client(other) as c:  # another tenant's admin sees and releases nothing of acme
        assert c.get("/v1/holds").json()["holds"] == []
        assert c.post(f"/v1/holds/{hold['id']}/release", json={"reason": "x"}).status_code == 404
    with srv.client(admin) as c:
        r = c.post(f"/v1/holds/{hold['id']}/release", json={"reason": "case closed"})
        assert r.status_code == 200 and r.json()["released_at"]
        assert c.post(f"/v1/holds/{hold['id']}/release", json={"reason": "again"}).status_code == 404
        assert c.get("/v1/holds").json()["holds"] == []
        assert len(c.get("/v1/holds", params={"status": "all"}).json()["holds"]) == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and c.get(f"/v1/events/{ids[1]}").status_code != 410:
            time.sleep(0.2)
        assert c.get(f"/v1/events/{ids[1]}").status_code == 410
        actions = [i["event"]["action"] for i in c.get("/v1/events", params={"action": "auditkeep.hold.*"}).json()["events"]]
        assert sorted(actions) == ["auditkeep.hold.added", "auditkeep.hold.released"]
    with srv.client() as c:
        assert c.get("/v1/holds").status_code == 401


def test_erase_over_http(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    admin = srv.key("acme", "admin,ingest,read")
    reader = srv.key("acme", "read")
    with srv.client(admin) as c:
        for i in range(3):
            ev = {"actor": {"id": "u-7", "name": "Erase Me", "ip": "10.1.2.3"}, "action": "user.login",
                  "resource": {"type": "doc", "id": f"d{i}"}}
            assert c.post("/v1/events", json=ev).status_code == 200
        hold = c.post("/v1/holds", json={"resource_type": "doc", "resource_id": "d1", "reason": "case"}).json()
        r = c.post("/v1/subjects/u-7/erase", json={"reason": "GDPR"})
        assert r.status_code == 409 and hold["id"] in r.json()["error"]
        assert c.post(f"/v1/holds/{hold['id']}/release", json={"reason": "done"}).status_code == 200
        r = c.post("/v1/subjects/u-7/erase", json={"reason": "GDPR"})
        assert r.status_code == 200, r.text
        assert r.json()["events"] == 3 and sum(b - a for a, b in r.json()["ranges"]) == 3
        items = c.get("/v1/events", params={"actor": "u-7"}).json()["events"]
        assert [i["event"]["actor"]["name"] for i in items] == ["[erased]"] * 3
        assert c.post("/v1/subjects/u-7/erase", json={"reason": "again"}).status_code == 404
        assert c.post("/v1/subjects/u-7/erase", json={}).status_code == 422
        assert c.post("/v1/subjects/" + "x" * 1100 + "/erase", json={"reason": "r"}).status_code == 422
        records = c.get("/v1/events", params={"action": "auditkeep.subject.erased"}).json()["events"]
        assert len(records) == 1 and "u-7" not in str(records[0]["event"])
    with srv.client(reader) as c:
        assert c.post("/v1/subjects/u-7/erase", json={"reason": "x"}).status_code == 403
