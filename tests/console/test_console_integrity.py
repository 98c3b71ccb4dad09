"""The integrity page in a real Chromium: checkpoints a page at a time (newest first, each
checked against the next newer, across pages too), and *Verify now* running in the background
with a progress bar the page polls, one run at a time per tenant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from console_support import (
    ACCOUNTS,
    PASSWORD,
    add_user,
    auditkeep,
    ingest_until_checkpointed,
    sign_in,
)
from http_server_support import Server
from playwright.sync_api import Page, expect


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("console-integrity") / "data"
    assert auditkeep(data, "init", process=False).returncode == 0
    for name, role in ACCOUNTS.items():
        add_user(data, "acme", name, role)
    s = Server(data, env={"AUDITKEEP_CHECKPOINT_INTERVAL": "0.1"})
    yield s
    s.stop()
    assert "Traceback" not in s.output(), s.output()


def _ingest(srv: Server, n: int, batch: int = 5000) -> None:
    with srv.client(srv.admin) as c:
        for start in range(0, n, batch):
            evs = [{"actor": {"id": f"u{i % 50}"}, "action": "integrity.probe"} for i in range(start, min(n, start + batch))]
            r = c.post("/v1/events", params={"tenant": "acme"}, json=evs)
            assert r.status_code == 200, r.text


@contextmanager
def _session(url: str, username: str = "vic") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as c:
        csrf = c.get("/ui/login").cookies["ak_login"]
        r = c.post("/ui/login", data={"csrf": csrf, "tenant": "acme", "username": username, "password": PASSWORD})
        assert r.status_code == 303, r.text
        yield c


def _csrf(c: httpx.Client) -> str:
    html = c.get("/ui/integrity").text
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_checkpoints_page_through_newest_first(srv: Server, page: Page) -> None:
    for _ in range(25):  # a checkpoint after each (the interval is 0.1 s)
        ingest_until_checkpointed(srv, [{"actor": {"id": "u0"}, "action": "integrity.probe"}])
    sign_in(page, srv.url, "vic")
    page.goto(srv.url + "/ui/integrity")
    rows = page.locator("#checkpoints tbody tr")
    expect(rows).to_have_count(10)
    sizes: list[int] = []
    while True:
        texts = [rows.nth(i).locator("td").nth(0).inner_text() for i in range(rows.count())]
        sizes += [int(t) for t in texts]
        for i in range(rows.count()):
            expect(rows.nth(i).locator("td").nth(3)).to_have_text("valid")
        if len(sizes) > 10:  # the first row of a later page is checked against the previous page's last
            expect(rows.nth(0).locator("td").nth(4)).to_have_text("consistent")
        older = page.get_by_role("link", name="Older checkpoints")
        if older.count() == 0:
            break
        older.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Older checkpoints")).to_be_visible()
    assert len(sizes) >= 20
    assert sizes == sorted(set(sizes), reverse=True)  # newest first, none repeated
    r = httpx.get(srv.url + "/ui/integrity?below=abc", cookies={c["name"]: c["value"] for c in page.context.cookies()})
    assert r.status_code == 400


def test_verify_now_runs_in_the_background_with_progress(srv: Server, page: Page) -> None:
    _ingest(srv, 60_000)
    with _session(srv.url) as c:
        csrf = _csrf(c)
        first = c.post("/ui/integrity/verify", data={"csrf": csrf}, headers={"Accept": "application/json"})
        assert first.status_code == 202, first.text
        # a second press while it runs joins the same run (one at a time per tenant)
        second = c.post("/ui/integrity/verify", data={"csrf": csrf}, headers={"Accept": "application/json"})
        job: dict[str, Any] = first.json()
        assert job["state"] == "running" and job["total"] >= 60_000
        assert second.json()["id"] == job["id"]  # recomputing 60,000 entries outlasts two requests
        # the page shows the running job's progress bar, then the result, without a reload by hand
        sign_in(page, srv.url, "vic")
        page.goto(srv.url + "/ui/integrity")
        expect(page.locator("#report .verdict")).to_be_visible(timeout=120_000)
        done = c.get("/ui/integrity/verify/status").json()
        assert done["state"] == "done" and done["done"] == done["total"] and done["report"]["ok"] is True, done["report"]
        expect(page.locator("#report .verdict")).to_contain_text("Log verified")
    # a verify without a session, or with a forged token, starts nothing
    r = httpx.post(srv.url + "/ui/integrity/verify", data={"csrf": "x"}, follow_redirects=False)
    assert r.status_code == 303 and "/ui/login" in r.headers["location"]
    with _session(srv.url, "mallory") as c:
        r = c.post("/ui/integrity/verify", data={"csrf": "forged"})
        assert r.status_code == 403


def test_the_progress_bar_moves_while_a_verify_runs(srv: Server, page: Page) -> None:
    """Starting from the page: the bar is shown with the entries done so far, and the page
    turns into the result by itself (the script polls the status)."""
    sign_in(page, srv.url, "olga")
    page.goto(srv.url + "/ui/integrity")
    page.get_by_role("button", name="Verify now").click()
    verdict = page.locator("#report .verdict")
    bar = page.locator("#verify-progress")
    expect(bar.or_(verdict)).to_be_visible()
    if bar.is_visible():
        assert int(bar.get_attribute("max") or 0) >= 60_000
        expect(page.locator("#verify-text")).to_contain_text("Verifying:")
    expect(verdict).to_contain_text("Log verified", timeout=120_000)
    expect(page.locator("#report")).to_contain_text("by olga")
