"""The /v1/archive API against a real server: a run started over HTTP (admin only, refused
with 409 while another archiver holds the lease), the tenant's segments listed a page at a
time and a manifest read (read scope), each read recorded in the tenant's log, nothing of
another tenant visible."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from http_server_support import Server, event

from auditkeep.archive.check import check_segment_files
from auditkeep.crypto.signing import load_signing_key
from auditkeep.store.sqlite_lease import file_lease

CONFIG = """
[archive]
dir = "{dir}"
segment_entries = 256
"""


def test_archive_over_http(make_server: Callable[..., Server], tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (tmp_path / "auditkeep.toml").write_text(CONFIG.format(dir=archive))
    data = tmp_path / "data"
    srv = make_server(data=data)
    admin = srv.key("acme", "admin,ingest,read")
    reader = srv.key("acme", "read")
    other = srv.key("globex", "admin,ingest,read")
    with srv.client(admin) as c:
        for i in range(0, 700, 100):
            r = c.post("/v1/events", json=[event(i + j) for j in range(100)])
            assert r.status_code == 200, r.text
        # nothing is ready without a policy's archive_after or older_than
        r = c.post("/v1/archive/runs")
        assert r.status_code == 409 and "archive_after" in r.json()["error"]
        assert c.post("/v1/archive/runs", json={"older_than": "soon"}).status_code == 422
        assert c.post("/v1/archive/runs", json={"colour": "red"}).status_code == 422
        assert c.post("/v1/archive/runs", content=b"{").status_code == 400
        time.sleep(1.1)  # every event is older than 1s now
        # another archiver holds the store's lease: refused, nothing written
        lease = file_lease(data, "archive")
        assert lease is not None
        try:
            r = c.post("/v1/archive/runs", json={"older_than": "1s"})
            assert r.status_code == 409 and r.json()["lease"] == "held", r.text
        finally:
            lease.release()
        assert not archive.exists()
        r = c.post("/v1/archive/runs", json={"older_than": "1s"})
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["tenant"] == "acme" and run["archived_before"] == 0 and not run["more"]
        assert run["segments"][:2] == [[0, 256], [256, 512]] and run["archived_to"] >= 700
    with srv.client(reader) as c:
        assert c.post("/v1/archive/runs", json={"older_than": "1s"}).status_code == 403  # admin only
        page = c.get("/v1/archive/segments", params={"limit": 2}).json()
        assert [s["id"] for s in page["segments"]] == ["0-256", "256-512"] and page["next_after"] == 256
        assert all(s["complete"] and s["tree_size"] >= s["end"] for s in page["segments"])
        rest = c.get("/v1/archive/segments", params={"limit": 2, "after": page["next_after"]}).json()
        assert rest["segments"][0]["id"] == "512-" + str(run["segments"][2][1]) and rest["next_after"] is None
        r = c.get("/v1/archive/segments/256-512")
        assert r.status_code == 200 and r.json()["first"] == 256 and r.json()["segment_note"]
        assert c.get("/v1/archive/segments/256-513").status_code == 404
        assert c.get("/v1/archive/segments/..%2F..%2Fetc").status_code in (404, 422)
        assert c.get("/v1/archive/segments/x-1").status_code == 422
        assert c.get("/v1/archive/segments", params={"limit": 1001}).status_code == 422
        # each read is in the tenant's log, with the key that read
        deadline = time.monotonic() + 30  # reads are recorded without holding up the answer
        while True:
            reads = c.get("/v1/events", params={"action": "auditkeep.archive.*"}).json()["events"]
            actions = sorted(e["event"]["action"] for e in reads)
            if "auditkeep.archive.read" in actions or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert actions.count("auditkeep.archive.list") >= 1 and "auditkeep.archive.read" in actions
        assert "auditkeep.archive.run" in actions and "auditkeep.archive.written" in actions
        assert {e["event"]["actor"]["id"] for e in reads if e["event"]["action"] == "auditkeep.archive.read"} == {
            reader.split("_")[1]}
    with srv.client(other) as c:  # another tenant sees none of acme's segments
        assert c.get("/v1/archive/segments").json()["segments"] == []
        assert c.get("/v1/archive/segments/0-256").status_code == 404
    with srv.client() as c:
        assert c.get("/v1/archive/segments").status_code == 401
        assert c.post("/v1/archive/runs").status_code == 401
    # what the API wrote is a segment the offline checker accepts
    vkey = load_signing_key(data / "signing.key").verifier_key()
    rep = check_segment_files(next(archive.rglob("*256-000000000512.manifest.json")), [vkey])
    assert rep.ok and rep.entries == 256, rep.failures


def test_no_archive_configured(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    admin = srv.key("acme", "admin,read")
    with srv.client(admin) as c:
        r = c.get("/v1/archive/segments")
        assert r.status_code == 404 and "no archive" in r.json()["error"]
        assert c.post("/v1/archive/runs", json={"older_than": "1d"}).status_code == 404
