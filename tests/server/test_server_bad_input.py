"""Bad input never hurts the server: a clear 4xx JSON body, never a 500, never a partial batch."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from http_server_support import Server, event

LIMITS = {"AUDITKEEP_MAX_BODY_BYTES": "65536", "AUDITKEEP_MAX_BATCH_EVENTS": "50"}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with small limits for the module (each test has a tenant of its own)."""
    srv = Server(tmp_path_factory.mktemp("bad-input") / "data", LIMITS)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def small(small_server: Server, request: pytest.FixtureRequest) -> Iterator[tuple[Server, httpx.Client]]:
    srv = small_server
    key = srv.key(f"bad-{request.node.name.removeprefix('test_')[:40].replace('_', '-')}", "ingest,read")
    with srv.client(key) as c:
        yield srv, c
        # nothing of any refused request landed, and nothing was a 500
        assert c.get("/v1/events", params={"action": "doc.*"}).json()["events"] == []
    with srv.client(srv.admin) as c:
        assert "auditkeep_internal_errors_total 0.0" in c.get("/metrics").text


def _post(c: httpx.Client, body: bytes, ctype: str = "application/json", **headers: str) -> httpx.Response:
    return c.post("/v1/events", content=body, headers={"Content-Type": ctype, **headers})


def _error(r: httpx.Response, status: int, part: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, object] = r.json()
    assert part in str(body["error"]), body
    return body


def test_malformed_json_and_utf8(small: tuple[Server, httpx.Client]) -> None:
    _, c = small
    _error(_post(c, b'[{"actor": {"id": "a"}, "action": '), 400, "malformed JSON")
    _error(_post(c, b'[{"actor": {"id": "\xff\xfe"}, "action": "a.b"}]'), 400, "UTF-8")
    _error(_post(c, b"   "), 400, "empty")
    _error(_post(c, b"not json at all", "application/x-ndjson"), 400, "malformed JSON")
    nested = b'{"actor":{"id":"a"},"action":"x","metadata":{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}}"
    _error(_post(c, nested), 400, "nested")
    shallow = b'{"actor":{"id":"a"},"action":"x","metadata":{"a":' + b"[" * 20 + b"]" * 20 + b"}}"
    body = _error(_post(c, shallow), 422, "nested deeper")
    assert body["position"] == 0


def test_content_type_and_encoding(small: tuple[Server, httpx.Client]) -> None:
    _, c = small
    good = orjson.dumps(event(0, action="doc.read"))
    _error(_post(c, good, "text/plain"), 415, "content type")
    _error(c.post("/v1/events", content=good), 415, "content type")
    _error(_post(c, good, **{"Content-Encoding": "br"}), 415, "encoding")
    _error(_post(c, b"\x1f\x8bnot gzip", **{"Content-Encoding": "gzip"}), 400, "gzip")
    _error(_post(c, gzip.compress(good)[:-6], **{"Content-Encoding": "gzip"}), 400, "gzip")


def test_sizes(small: tuple[Server, httpx.Client]) -> None:
    _, c = small
    big = orjson.dumps([event(i, action="doc.read", reason="x" * 2000) for i in range(40)])
    assert len(big) > 65536
    _error(_post(c, big), 413, "larger")

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    _error(c.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"}), 413, "larger")
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]", 9)
    assert len(bomb) < 65536
    _error(_post(c, bomb, **{"Content-Encoding": "gzip"}), 413, "decompressed")
    many = orjson.dumps([event(i, action="doc.read") for i in range(51)])
    _error(_post(c, many), 413, "51 events")


def test_invalid_event_rejects_the_whole_batch(small: tuple[Server, httpx.Client]) -> None:
    _, c = small
    batch = [event(i, action="doc.read") for i in range(6)]
    batch[3]["actor"] = {"id": 7}
    body = _error(_post(c, orjson.dumps(batch)), 422, "event 3: actor.id")
    assert body["position"] == 3 and body["field"] == "actor.id" and body["reason"]
    lines = b"\n".join(orjson.dumps(e) for e in [event(0, action="doc.read"), {"actor": {"id": "a"}}])
    body = _error(_post(c, lines, "application/x-ndjson"), 422, "action")
    assert body["position"] == 1
    bad_time = [event(0, action="doc.read", time="2024-13-45T00:00:00Z")]
    assert _post(c, orjson.dumps(bad_time)).status_code == 422
    bad_ip = [event(0, action="doc.read", actor={"id": "a", "ip": "999.1.1.1"})]
    assert _error(_post(c, orjson.dumps(bad_ip)), 422, "actor.ip")["field"] == "actor.ip"


def test_duplicate_keys_are_refused_naming_the_key(small: tuple[Server, httpx.Client]) -> None:
    """`{"action":"x.y","action":"z.w"}` was stored as z.w: now a 400 naming the key."""
    _, c = small
    body = _error(_post(c, b'{"actor":{"id":"a"},"action":"doc.x","action":"doc.y"}'), 400, "duplicate key 'action'")
    assert body["field"] == "action"
    good = orjson.dumps(event(0, action="doc.read"))
    bad = b'{"actor":{"id":"a"},"action":"doc.read","metadata":{"k":1,"k":2}}'
    body = _error(_post(c, good + b"\n" + bad, "application/x-ndjson"), 400, "duplicate key 'k'")
    assert (body["position"], body["field"]) == (1, "metadata.k")
    body = _error(_post(c, b"[" + good + b"," + bad + b"]"), 400, "duplicate key")
    assert body["position"] == 1


def test_huge_headers_and_slow_body(small: tuple[Server, httpx.Client]) -> None:
    srv, c = small
    r = c.get("/healthz", headers={"X-Padding": "a" * 200_000})
    assert 400 <= r.status_code < 500
    assert c.get("/healthz").status_code == 200

    key = c.headers["authorization"]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        s.sendall(head.encode() + b'[{"actor":')
        t0 = time.monotonic()
        reply = ""
        while "}" not in reply:
            chunk = s.recv(65536).decode()
            if not chunk:
                break
            reply += chunk
        assert time.monotonic() - t0 < 9
    assert reply.startswith("HTTP/1.1 408"), reply
    assert '"error"' in reply and "did not arrive" in reply


def test_slow_headers_get_408(small: tuple[Server, httpx.Client]) -> None:
    srv, _ = small
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        t0 = time.monotonic()
        reply = b""
        while b"}" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert time.monotonic() - t0 < 9
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"did not arrive in time" in reply
