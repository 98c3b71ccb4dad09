"""The live tail: resume from Last-Event-ID without gaps while ingest goes on; filters; heartbeats."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
from http_server_support import Server, event


def sse(lines: Iterator[str]) -> Iterator[tuple[str | None, dict[str, object] | None]]:
    """(id, data) per event; (None, None) per comment (heartbeat)."""
    eid: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield eid, orjson.loads("\n".join(data))
            eid, data = None, []
        elif line.startswith(":"):
            yield None, None
        elif line.startswith("id:"):
            eid = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def _ingest(server: Server, key: str, stop: threading.Event, sent: list[int]) -> None:
    with server.client(key) as c:
        i = 0
        while not stop.is_set():
            r = c.post("/v1/events", json=[event(i + j) for j in range(20)])
            assert r.status_code == 200
            sent.extend(x["index"] for x in r.json()["receipts"])
            i += 20
            time.sleep(0.01)


def test_resume_from_last_event_id_without_gaps(server: Server) -> None:
    key = server.key("sse", "ingest,read")
    stop = threading.Event()
    sent: list[int] = []
    writer = threading.Thread(target=_ingest, args=(server, key, stop, sent))
    writer.start()
    seen: list[int] = []
    try:
        with server.client(key) as c:
            for round_ in range(3):
                headers = {"Last-Event-ID": str(seen[-1])} if seen else {}
                params = {} if seen else {"from_index": 0}
                got = 0
                with c.stream("GET", "/v1/stream", params=params, headers=headers) as r:
                    assert r.status_code == 200
                    assert r.headers["content-type"].startswith("text/event-stream")
                    for eid, data in sse(r.iter_lines()):
                        if eid is None or data is None:
                            continue
                        assert int(eid) == data["index"]
                        assert data["tenant"] == "sse"
                        seen.append(int(eid))
                        got += 1
                        if got >= 150 + 50 * round_:
                            break
    finally:
        stop.set()
        writer.join()
    assert seen == list(range(seen[0], seen[0] + len(seen))), "a gap or a repeat"
    assert seen[0] == 0
    assert len(seen) >= 450
    assert set(sent) & set(seen)


def test_filters_heartbeats_and_only_new_events(server: Server) -> None:
    key = server.key("ssef", "ingest,read")
    with server.client(key) as c:
        c.post("/v1/events", json=[event(0, action="old.thing")])
        got: list[dict[str, object]] = []
        beats = 0

        def later() -> None:
            time.sleep(0.8)
            with server.client(key) as w:
                w.post("/v1/events", json=[event(1, action="user.login"), event(2, action="doc.read")])
                w.post("/v1/events", json=[event(3, action="user.logout", outcome="failure")])

        t = threading.Thread(target=later)
        t.start()
        with c.stream("GET", "/v1/stream", params={"action": "user.*", "outcome": "failure"}) as r:
            for eid, data in sse(r.iter_lines()):
                if eid is None:
                    beats += 1
                    continue
                assert data is not None
                got.append(data)
                break
        t.join()
        assert beats >= 1  # the test server beats every 0.5 s
        assert [g["event"]["action"] for g in got] == ["user.logout"]  # type: ignore[index]

        r = c.get("/v1/stream", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 422
        assert c.get("/v1/stream", params={"from_index": "-1"}).status_code == 422


def test_stream_is_recorded_and_counted(server: Server) -> None:
    key = server.key("ssea", "read")
    with server.client(key) as c, c.stream("GET", "/v1/stream", params={"actor": "bob"}) as r:
        assert r.status_code == 200
        for eid, _ in sse(r.iter_lines()):
            if eid is None:
                break
    with server.client(server.admin) as c:
        deadline = time.monotonic() + 5
        evs: list[dict[str, object]] = []
        while not evs and time.monotonic() < deadline:
            evs = c.get("/v1/events", params={"tenant": "ssea", "action": "auditkeep.stream.open"}).json()["events"]
        assert evs
        ev = evs[0]["event"]
        assert ev["actor"]["id"] == key.split("_")[1]  # type: ignore[index]
        assert ev["metadata"]["filters"] == {"actor": "bob"}  # type: ignore[index]
        assert "auditkeep_sse_clients" in c.get("/metrics").text


def test_stream_needs_read_scope(server: Server) -> None:
    key = server.key("ssea", "ingest")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/v1/stream").status_code == 403


def test_stream_of_a_tenant_without_a_log_gets_its_first_events(server: Server) -> None:
    def later() -> None:
        time.sleep(0.5)
        with server.client(server.admin) as w:
            w.post("/v1/events", json=[event(0, action="first.one")], params={"tenant": "ssenew"})

    t = threading.Thread(target=later)
    t.start()
    got: list[object] = []
    # an admin's stream of a tenant that has no log yet (its opening is recorded elsewhere)
    with server.client(server.admin) as c, c.stream("GET", "/v1/stream", params={"tenant": "ssenew"}) as r:
        for eid, data in sse(r.iter_lines()):
            if eid is not None and data is not None:
                got.append((eid, data["event"]["action"]))  # type: ignore[index]
                break
    t.join()
    assert got == [("0", "first.one")]


def test_a_client_that_stops_reading_is_disconnected(make_server: Callable[..., Server]) -> None:
    srv = make_server(args=("--stream-send-timeout", "1"))
    key = srv.key("slow", "ingest,read")
    with srv.client(key) as c:
        for k in range(10):
            big = [event(i, reason="r" * 4000) for i in range(k * 200, (k + 1) * 200)]
            assert c.post("/v1/events", json=big).status_code == 200
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(f"GET /v1/stream?from_index=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline and 'reason="slow"} 1.0' not in text:
            time.sleep(0.5)  # never reading the stream
            with srv.client(srv.admin) as c:
                text = c.get("/metrics").text
        assert 'auditkeep_sse_disconnects_total{reason="slow"} 1.0' in text
        assert "auditkeep_sse_clients 0.0" in text
    assert "Traceback" not in srv.output() and "ERROR" not in srv.output(), srv.output()



def _tail_until_closed(server: Server, key: str, lines: list[str], opened: threading.Event) -> None:
    with server.client(key) as c, c.stream("GET", "/v1/stream") as r:
        assert r.status_code == 200
        opened.set()
        for line in r.iter_lines():
            lines.append(line)


def test_a_revoked_or_expired_key_ends_its_live_tail(server: Server) -> None:
    """The tail re-checks its key: revocation (through the API or by another process) and
    expiry end it with an ``error`` event, instead of events flowing on for good."""
    from auditkeep.model.timefmt import format_rfc3339

    for how in ("api", "expiry"):
        extra = {"expires": format_rfc3339(time.time_ns() + 3 * 10**9)} if how == "expiry" else {}
        key = server.key("ssek", "ingest,read", **extra)
        lines: list[str] = []
        opened = threading.Event()
        tail = threading.Thread(target=_tail_until_closed, args=(server, key, lines, opened), daemon=True)
        tail.start()
        assert opened.wait(10)
        if how == "api":
            with server.client(server.admin) as c:
                assert c.delete(f"/v1/keys/{key.split('_')[1]}").status_code == 200
        tail.join(15)  # before the fix: heartbeats forever
        assert not tail.is_alive(), f"the live tail outlived its key ({how})"
        reason = "revoked" if how == "api" else "expired"
        assert "event: error" in lines and any(reason in x for x in lines if x.startswith("data:")), lines
