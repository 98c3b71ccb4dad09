"""Ingest, search, fetch and prove over real HTTP; proofs checked against the signed checkpoint."""

from __future__ import annotations

import base64
import gzip
import uuid

import orjson
from http_server_support import Server, event

from auditkeep.log.checkpoint import verify_checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import NoteVerifier
from auditkeep.log.proofs import verify_consistency, verify_inclusion


def _verifier(server: Server) -> NoteVerifier:
    with server.client() as c:
        r = c.get("/v1/pubkey")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return NoteVerifier.from_vkey(r.text.strip())


def test_ingest_search_fetch_and_prove(server: Server) -> None:
    key = server.key("rt", "ingest,read")
    verifier = _verifier(server)
    with server.client(key) as c:
        r = c.post("/v1/events", json=[event(i) for i in range(5)])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tenant"] == "rt"
        receipts = body["receipts"]
        base = receipts[0]["index"]  # the key's creation is recorded first in the tenant's log
        assert [x["index"] for x in receipts] == [base + i for i in range(5)]
        assert set(receipts[0]) == {"id", "index", "leaf_hash", "received_at"}

        r = c.get("/v1/events", params={"action": "doc.read", "order": "oldest", "limit": 3})
        assert r.status_code == 200
        page = r.json()
        assert [e["index"] for e in page["events"]] == [base, base + 1, base + 2]
        assert page["next_cursor"]
        rest = c.get("/v1/events", params={"action": "doc.read", "order": "oldest", "cursor": page["next_cursor"]}).json()
        assert [e["index"] for e in rest["events"]] == [base + 3, base + 4]
        assert rest["next_cursor"] is None
        only = c.get("/v1/events", params={"actor": "user3", "action": "doc.read"}).json()["events"]
        assert [e["event"]["actor"]["id"] for e in only] == ["user3"]

        rid = receipts[3]["id"]
        r = c.get(f"/v1/events/{rid}", params={"proof": "true"})
        assert r.status_code == 200
        got = r.json()
        assert got["index"] == base + 3 and got["event"]["id"] == rid and got["tenant"] == "rt"
        leaf = base64.b64decode(got["leaf"])
        assert leaf_hash(leaf).hex() == got["leaf_hash"] == receipts[3]["leaf_hash"]
        proof = got["proof"]
        cp = verify_checkpoint(proof["checkpoint"], verifier)
        assert cp.size == proof["tree_size"] >= 5
        verify_inclusion(leaf_hash(leaf), base + 3, cp.size, [bytes.fromhex(h) for h in proof["hashes"]], cp.root)

        r = c.get("/v1/proofs/inclusion", params={"id": rid})
        assert r.status_code == 200 and r.json()["index"] == base + 3

        c.post("/v1/events", json=[event(9)])
        latest = c.get("/v1/checkpoints/latest")
        assert latest.status_code == 200 and latest.headers["content-type"] == "text/plain; charset=utf-8"
        new = verify_checkpoint(latest.text, verifier)
        old_note = c.get(f"/v1/checkpoints/{cp.size}")
        assert old_note.status_code == 200
        assert verify_checkpoint(old_note.text, verifier).root == cp.root
        r = c.get("/v1/proofs/consistency", params={"from": cp.size, "to": new.size})
        assert r.status_code == 200, r.text
        cons = r.json()
        assert cons["from"] == cp.size and cons["to"] == new.size
        verify_consistency(cp.size, new.size, [bytes.fromhex(h) for h in cons["hashes"]], cp.root, new.root)


def test_single_object_ndjson_gzip_and_idempotent_retry(server: Server) -> None:
    key = server.key("fmt", "ingest,read")
    eid = str(uuid.uuid4())
    with server.client(key) as c:
        one = c.post("/v1/events", json=event(1, id=eid))
        assert one.status_code == 200 and len(one.json()["receipts"]) == 1
        again = c.post("/v1/events", json=event(1, id=eid))
        assert again.json()["receipts"] == one.json()["receipts"]
        conflict = c.post("/v1/events", json=event(2, id=eid))
        assert conflict.status_code == 409
        assert eid in conflict.json()["error"]

        nd = b"\n".join(orjson.dumps(event(i)) for i in range(3)) + b"\n"
        r = c.post("/v1/events", content=nd, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200 and len(r.json()["receipts"]) == 3
        gz = gzip.compress(orjson.dumps([event(i) for i in range(4)]))
        r = c.post("/v1/events", content=gz, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 200 and len(r.json()["receipts"]) == 4
        r = c.get("/v1/events", params={"action": "doc.read", "limit": 100})
        assert len(r.json()["events"]) == 1 + 3 + 4


def test_not_found_and_bad_parameters(server: Server) -> None:
    key = server.key("nf", "ingest,read,verify")
    with server.client(key) as c:
        c.post("/v1/events", json=event(0))
        r = c.get(f"/v1/events/{uuid.uuid4()}")
        assert r.status_code == 404 and "error" in r.json()
        assert c.get("/v1/events/not-a-uuid").status_code == 404
        r = c.get("/v1/proofs/inclusion", params={"index": "x"})
        assert r.status_code == 422 and r.json()["field"] == "index"
        assert c.get("/v1/proofs/inclusion", params={"index": 99}).status_code == 404
        assert c.get("/v1/proofs/inclusion").status_code == 422
        assert c.get("/v1/checkpoints/123456").status_code == 404
        assert c.get("/v1/events", params={"cursor": "!!"}).status_code == 422
        assert c.get("/v1/events", params={"since": "yesterday-ish"}).status_code == 422
        assert c.get("/v1/events", params={"limit": "0"}).status_code == 422
        assert c.get("/v1/events", params={"order": "sideways"}).status_code == 422
        assert c.get("/v1/nothing").status_code == 404
        r = c.put("/v1/events")
        assert r.status_code == 405 and "error" in r.json()


def test_health_ready_docs(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        spec = c.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1") and "/v1/events" in spec["paths"]
        page = c.get("/docs")
        assert page.status_code == 200 and "/v1/stream" in page.text and "<script" not in page.text
