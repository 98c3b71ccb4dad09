"""An open live tail ends when its session does: sign-out from another request, or the
account disabled by an admin (plain httpx SSE clients with the session cookie)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from console_support import PASSWORD, add_user
from http_server_support import Server

WAIT = 30  # seconds: a bound so a tail that wrongly stays open fails the test instead of hanging


@contextmanager
def _signed_in(url: str, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, follow_redirects=False, timeout=WAIT) as c:
        r = c.get("/ui/login")
        r = c.post("/ui/login", data={"csrf": r.cookies["ak_login"], "tenant": "acme", "username": username, "password": PASSWORD})
        assert r.status_code == 303, r.text
        yield c


def _csrf(c: httpx.Client, path: str) -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    found = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert found
    return found.group(1)


def _tail_until_ended(c: httpx.Client, end_it: object) -> str:
    """Open the tail, call ``end_it`` once the stream is open, and return the reason of the
    server's ``error`` event once the stream ends."""
    deadline = time.monotonic() + WAIT
    reason = ""
    event = ""
    with c.stream("GET", "/ui/live/stream") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            assert time.monotonic() < deadline, "the live tail did not end"
            if line.startswith("retry:"):
                end_it()  # type: ignore[operator]
            elif line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "error":
                reason = json.loads(line.split(":", 1)[1])["error"]
    return reason


def test_signing_out_ends_an_open_live_tail(console_server: Server) -> None:
    add_user(console_server.data, "acme", "tess", "viewer")
    with _signed_in(console_server.url, "tess") as tail, httpx.Client(base_url=console_server.url, follow_redirects=False) as other:
        csrf = _csrf(tail, "/ui/live")
        other.cookies.set("ak_session", tail.cookies["ak_session"])

        def sign_out() -> None:
            assert other.post("/ui/logout", data={"csrf": csrf}).status_code == 303

        assert _tail_until_ended(tail, sign_out) == "the session ended (signed out)"
        assert tail.get("/ui/live/stream").status_code == 303  # and it cannot reopen


def test_disabling_the_account_ends_its_open_live_tail(console_server: Server) -> None:
    add_user(console_server.data, "acme", "dora", "viewer")
    with _signed_in(console_server.url, "dora") as tail, _signed_in(console_server.url, "alice") as admin:
        csrf = _csrf(admin, "/ui/admin/users")

        def disable() -> None:
            r = admin.post("/ui/admin/users", data={"csrf": csrf, "op": "disable", "username": "dora"})
            assert r.status_code == 303, r.text

        assert _tail_until_ended(tail, disable) == "the account is disabled"
        assert tail.get("/ui/live/stream").status_code == 303


def test_a_valid_session_keeps_its_tail_across_checks(console_server: Server) -> None:
    with _signed_in(console_server.url, "olga") as tail, tail.stream("GET", "/ui/live/stream?action=kept.*") as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("retry:"))
        time.sleep(2)  # several session checks pass
        with console_server.client(console_server.admin) as c:
            assert c.post("/v1/events", params={"tenant": "acme"}, json=[{"actor": {"id": "x"}, "action": "kept.one"}]).status_code == 200
        data = next(line for line in lines if line.startswith(("data:", "event:")))
        assert data.startswith("data:") and json.loads(data[5:])["event"]["action"] == "kept.one"
