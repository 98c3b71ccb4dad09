"""Reviews and the actor timeline in a real Chromium: an auditor signs off a search, the
sign-off is an event in the log, the history lists it (printable, CSV); viewers cannot."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from console_support import sign_in
from http_server_support import Server
from playwright.sync_api import Page, expect

DAY = "2026-02-02"


@pytest.fixture(scope="module")
def seeded(console_server: Server) -> Server:
    """The server with rita's events, ingested once per module (and per xdist worker, so a
    test that needs them does not depend on another test having run before it)."""
    _seed(console_server)
    return console_server


def _seed(srv: Server) -> None:
    events: list[dict[str, Any]] = [
        {"time": f"{DAY}T10:{m:02d}:00Z", "actor": {"id": "rita", "type": "user"}, "action": "payroll.view",
         "outcome": "success", "resource": {"type": "payroll", "id": f"p{m}"}}
        for m in range(7)
    ] + [{"time": f"{DAY}T11:00:00Z", "actor": {"id": "rita"}, "action": "payroll.export", "outcome": "denied"},
         {"time": "2026-02-03T09:00:00Z", "actor": {"id": "rita"}, "action": "payroll.view", "outcome": "success"}]  # fmt: skip
    with srv.client(srv.admin) as c:
        r = c.post("/v1/events", params={"tenant": "acme"}, json=events)
        assert r.status_code == 200, r.text


def test_an_auditor_signs_off_a_search_and_finds_its_audit_event(seeded: Server, page: Page) -> None:
    console_server = seeded
    sign_in(page, console_server.url, "olga")
    page.goto(console_server.url + f"/ui/search?range=custom&since={DAY}T00:00:00Z&until={DAY}T23:59:59Z&actor=rita")
    expect(page.locator("table.results tbody tr")).to_have_count(8)
    page.get_by_label("Comment").fill("payroll access on Feb 2 checked against tickets =SUM(A1)")
    page.get_by_role("button", name="Sign off as reviewed").click()
    expect(page.get_by_role("heading", name="Reviews of acme")).to_be_visible()
    row = page.locator("#reviews tbody tr").first
    expect(row).to_contain_text("olga")
    expect(row).to_contain_text("actor=rita")
    expect(row.locator("td").nth(5)).to_have_text("8")
    expect(row).to_contain_text("checked against tickets")
    # the sign-off is an event in the tenant's log, with the fixed range and the count
    with console_server.client(console_server.admin) as c:
        found = c.get("/v1/events", params={"tenant": "acme", "action": "auditkeep.console.review"}).json()["events"]
    ev = found[0]["event"]
    assert ev["actor"]["id"] == "olga" and ev["metadata"]["events"] == 8
    assert ev["metadata"]["since"] == f"{DAY}T00:00:00Z" and ev["metadata"]["until"] == f"{DAY}T23:59:59Z"
    assert ev["metadata"]["filters"]["actor"] == "rita"
    assert ev["submitter"] == {"kind": "server", "id": "console:acme/olga"}
    # the history links to the review's own event page, which verifies
    row.locator("td").first.get_by_role("link").click()
    expect(page.locator("#verdict")).not_to_have_text("Checking in your browser…")
    # printable and CSV
    page.goto(console_server.url + "/ui/reviews?print=1")
    expect(page.locator("header.top")).to_be_hidden()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "ak_session")
    r = httpx.get(console_server.url + "/ui/reviews.csv", cookies={"ak_session": token})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["reviewer"] == "olga" and rows[0]["events"] == "8" and rows[0]["filters"] == "actor=rita"
    assert "'=SUM" not in rows[0]["comment"] and rows[0]["comment"].endswith("=SUM(A1)")  # not at a cell's start


def test_a_viewer_cannot_sign_off(console_server: Server, page: Page) -> None:
    sign_in(page, console_server.url, "vic")
    page.goto(console_server.url + "/ui/search")
    expect(page.get_by_role("button", name="Sign off as reviewed")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "ak_session")
    r = httpx.post(console_server.url + "/ui/reviews", cookies={"ak_session": token},
                   data={"csrf": csrf, "query": "range=24h", "comment": "forged"})  # fmt: skip
    assert r.status_code == 403
    with console_server.client(console_server.admin) as c:
        found = c.get("/v1/events", params={"tenant": "acme", "action": "auditkeep.console.review", "actor": "vic"}).json()
    assert found["events"] == []


def test_the_actor_timeline_groups_by_day(seeded: Server, page: Page) -> None:
    console_server = seeded
    sign_in(page, console_server.url, "vic")
    page.goto(console_server.url + f"/ui/search?range=custom&since={DAY}T00:00:00Z&until=2026-02-04T00:00:00Z&actor=rita")
    page.locator("table.results tbody tr").first.get_by_role("link", name="rita").click()
    page.get_by_label("Time", exact=True).select_option("all")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name=f"{DAY} (8 events)")).to_be_visible()
    expect(page.get_by_role("heading", name="2026-02-03 (1 events)")).to_be_visible()
    first = page.locator("ol.timeline").first.locator("li").first
    expect(first).to_contain_text("10:00:00")  # oldest first
    expect(first).to_contain_text("payroll/p0")
