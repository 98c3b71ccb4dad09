"""The search page in a real Chromium: filters, the histogram's counts, keyset paging, the
query in the URL, and the search recorded in the tenant's log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from console_support import sign_in
from http_server_support import Server
from playwright.sync_api import Page, expect

DAY = "2026-01-01"


def _ev(minute: int, outcome: str, **fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "time": f"{DAY}T00:{minute:02d}:{minute % 60:02d}Z",
        "actor": {"id": "carol", "type": "user"},
        "action": "doc.read",
        "resource": {"type": "doc", "id": f"d{minute}"},
        "outcome": outcome,
        "category": "data_access",
    }
    ev.update(fields)
    return ev


@pytest.fixture(scope="module")
def seeded(console_server: Server) -> Iterator[Server]:
    events = [
        *[_ev(5, "success") for _ in range(3)],
        *[_ev(5, "failure") for _ in range(2)],
        _ev(31, "denied", actor={"id": "dave", "type": "user"}, action="user.login", category="authentication",
            metadata={"geo": {"country": "NZ"}}, reason="bad token from kiwi"),
        *[_ev(40 + i % 10, "success", action="page.test") for i in range(120)],
    ]  # fmt: skip
    with console_server.client(console_server.admin) as c:
        r = c.post("/v1/events", params={"tenant": "acme"}, json=events)
        assert r.status_code == 200, r.text
    yield console_server


def _search(page: Page, url: str, **params: str) -> None:
    page.goto(url + "/ui/search")
    page.get_by_label("Time", exact=True).select_option("custom")
    page.get_by_label("From (custom: RFC 3339 or 2h ago)").fill(f"{DAY}T00:00:00Z")
    page.get_by_label("Until (custom)").fill(f"{DAY}T01:00:00Z")
    for label, value in params.items():
        field = page.get_by_label(label, exact=True)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Search").click()


def _bars(page: Page) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for rect in page.locator("svg.chart rect").all():
        start, outcome, count = (rect.get_attribute(a) for a in ("data-start", "data-outcome", "data-count"))
        assert start and outcome and count
        out[(start[11:16], outcome)] = int(count)
    return out


def test_histogram_counts_are_right(seeded: Server, page: Page) -> None:
    sign_in(page, seeded.url, "vic")
    _search(page, seeded.url, **{"Action (user.* for a prefix)": "doc.*"})
    expect(page.get_by_role("heading", name="Events over time")).to_be_visible()
    assert _bars(page) == {("00:04", "success"): 3, ("00:04", "failure"): 2}
    _search(page, seeded.url)
    bars = _bars(page)
    # one hour in 2-minute buckets; page.test events at minutes 40-49, 12 in each minute
    assert bars[("00:04", "success")] == 3 and bars[("00:04", "failure")] == 2 and bars[("00:30", "denied")] == 1
    assert sum(n for (start, o), n in bars.items() if o == "success" and start >= "00:40") == 120
    assert bars[("00:40", "success")] == 24
    totals = {li.get_attribute("data-outcome"): int(li.get_attribute("data-total") or 0)
              for li in page.locator(".legend li").all()}  # fmt: skip
    assert totals == {"success": 123, "failure": 2, "denied": 1}


def test_filters_narrow_the_results_and_live_in_the_url(seeded: Server, page: Page) -> None:
    sign_in(page, seeded.url, "vic")
    cases: list[tuple[dict[str, str], int]] = [
        ({"Actor": "dave"}, 1),
        ({"Action (user.* for a prefix)": "user.*"}, 1),
        ({"Outcome": "failure"}, 2),
        ({"Category": "authentication"}, 1),
        ({"Text (every word)": "kiwi"}, 1),
        ({"Metadata (path=value, one a line)": "geo.country=NZ"}, 1),
        ({"Resource id": "d5"}, 5),
        ({"Resource type": "doc", "Outcome": "success", "Actor": "carol"}, 50),  # a full first page
    ]
    for params, count in cases:
        _search(page, seeded.url, **params)
        expect(page.locator("table.results tbody tr")).to_have_count(count)
        q = parse_qs(urlsplit(page.url).query)
        assert q["range"] == ["custom"] and q["since"] == [f"{DAY}T00:00:00Z"]
        # the URL alone reproduces the page
        again = page.context.new_page()
        again.goto(page.url)
        expect(again.locator("table.results tbody tr")).to_have_count(count)
        again.close()
    _search(page, seeded.url, Actor="dave")
    expect(page.locator("table.results tbody tr td").nth(2)).to_have_text("user.login")


def test_keyset_paging_visits_every_event_once(seeded: Server, page: Page) -> None:
    sign_in(page, seeded.url, "vic")
    _search(page, seeded.url, **{"Action (user.* for a prefix)": "page.test"})
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        links = page.locator("table.results tbody tr td:first-child a")
        seen += [str(a.get_attribute("href")) for a in links.all()]
        nxt = page.get_by_role("link", name="Next page")
        if nxt.count() == 0:
            break
        nxt.click()
        expect(page.get_by_role("heading", name="Events (continued)")).to_be_visible()
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    page.get_by_role("link", name="First page").click()
    expect(page.locator("table.results tbody tr")).to_have_count(50)


def test_bad_filters_get_a_clear_message(seeded: Server, page: Page) -> None:
    sign_in(page, seeded.url, "vic")
    for query, says in (
        ("range=custom&since=yesterday", "since"),
        ("range=custom&since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "before its end"),
        ("meta=no-equals-sign", "path=value"),
        ("outcome=maybe", "outcome"),
        ("range=forever", "range"),
        ("cursor=garbage!", "cursor"),
        ("actor=" + "x" * 1001, "longer than 1000"),
    ):
        resp = page.goto(seeded.url + "/ui/search?" + query)
        assert resp is not None and resp.status == 400, query
        expect(page.get_by_role("alert")).to_contain_text(says)


def test_a_search_is_recorded_in_the_tenants_log(seeded: Server, page: Page) -> None:
    sign_in(page, seeded.url, "vic")
    _search(page, seeded.url, Actor="dave")
    deadline = time.monotonic() + 30
    with seeded.client(seeded.admin) as c:
        while True:
            r = c.get("/v1/events", params={"tenant": "acme", "action": "auditkeep.console.search", "actor": "vic"})
            found = [e["event"] for e in r.json()["events"] if e["event"]["metadata"]["filters"].get("actor") == "dave"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert found, r.text
    ev = found[0]
    assert ev["category"] == "data_access" and ev["metadata"]["results"] == 1
    assert ev["metadata"]["filters"]["since"] == f"{DAY}T00:00:00Z"


def test_usable_on_a_phone(seeded: Server, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = ctx.new_page()
        sign_in(page, seeded.url, "vic")
        _search(page, seeded.url, Actor="carol")
        expect(page.locator("svg.chart")).to_be_visible()
        # nothing wider than the screen but the results table's own scroller
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
    finally:
        ctx.close()
