"""The event page in a real Chromium: fields, raw JSON, the exact leaf, and the inclusion
proof checked by the browser (WebCrypto SHA-256 and Ed25519): Verified, and Not verified
after the stored event is altered (as tests/core/test_integrity_attacks.py alters it)."""

from __future__ import annotations

import base64
import sqlite3
import time
from typing import Any

from console_support import auditkeep, sign_in
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_server_support import Server
from playwright.sync_api import Page, expect

from auditkeep.log.note import NoteVerifier


def _ingest(srv: Server, **fields: Any) -> str:
    ev = {"actor": {"id": "erin", "type": "user"}, "action": "invoice.approve", "outcome": "success",
          "resource": {"type": "invoice", "id": "inv-7"}, "metadata": {"amount": 1200, "tags": ["q4"]}, **fields}  # fmt: skip
    with srv.client(srv.admin) as c:
        r = c.post("/v1/events", params={"tenant": "acme"}, json=[ev])
        assert r.status_code == 200, r.text
        event_id = str(r.json()["receipts"][0]["id"])
        deadline = time.monotonic() + 30  # the server signs a checkpoint within a second
        while c.get("/v1/proofs/inclusion", params={"tenant": "acme", "id": event_id}).status_code != 200:
            assert time.monotonic() < deadline, "no checkpoint covers the event"
            time.sleep(0.1)
    return event_id


def _open(page: Page, srv: Server, event_id: str) -> None:
    page.goto(f"{srv.url}/ui/events/{event_id}")
    expect(page.locator("#verdict")).not_to_have_text("Checking in your browser…")


def test_the_browser_verifies_the_proof(console_server: Server, page: Page) -> None:
    event_id = _ingest(console_server)
    sign_in(page, console_server.url, "vic")
    _open(page, console_server, event_id)
    expect(page.locator("#verdict")).to_have_text("Verified")
    detail = page.locator("#verdict-detail").inner_text()
    assert "Included at index" in detail and "tree of size" in detail and "checkpoint signed 20" in detail
    expect(page.locator("#trust-note")).to_contain_text("this server sends")
    # fields, raw JSON and the exact leaf
    expect(page.locator("dl.fields")).to_contain_text("resource.id")
    expect(page.locator("dl.fields")).to_contain_text("inv-7")
    assert '"amount": 1200' in page.locator("#raw-json").inner_text()
    with console_server.client(console_server.admin) as c:
        leaf = base64.b64decode(c.get(f"/v1/events/{event_id}", params={"tenant": "acme", "proof": "true"}).json()["leaf"])
    assert page.locator("#leaf").inner_text() == leaf.decode()


def test_a_pinned_key_is_used_and_a_wrong_one_fails(console_server: Server, page: Page) -> None:
    event_id = _ingest(console_server, outcome="denied")
    sign_in(page, console_server.url, "vic")
    _open(page, console_server, event_id)
    log_key = auditkeep(console_server.data, "pubkey").stdout.strip()
    page.get_by_text("Pin a verifier key").click()
    page.get_by_label("Verifier key").fill(log_key)
    page.get_by_role("button", name="Pin key").click()
    expect(page.locator("#trust-note")).to_contain_text("pinned in this browser")
    expect(page.locator("#verdict")).to_have_text("Verified")
    # another key under the same name: the checkpoint is not signed by it
    other = NoteVerifier(log_key.split("+")[0], Ed25519PrivateKey.generate().public_key()).vkey()
    page.get_by_label("Verifier key").fill(other)
    page.get_by_role("button", name="Pin key").click()
    expect(page.locator("#verdict")).to_have_text("Not verified")
    expect(page.locator("#verdict-detail")).to_contain_text("no signature on the checkpoint is by the verifier key")
    # the pin lasts across pages of this browser, and can be forgotten
    _open(page, console_server, event_id)
    expect(page.locator("#verdict")).to_have_text("Not verified")
    page.get_by_text("Pin a verifier key").click()
    page.get_by_role("button", name="Forget pinned key").click()
    expect(page.locator("#verdict")).to_have_text("Verified")


def test_an_altered_event_is_not_verified(console_server: Server, page: Page) -> None:
    event_id = _ingest(console_server, reason="tamper target")
    sign_in(page, console_server.url, "vic")
    _open(page, console_server, event_id)
    expect(page.locator("#verdict")).to_have_text("Verified")
    # an attacker with write access to the store's file edits the stored event
    with console_server.client(console_server.admin) as c:
        leaf = base64.b64decode(c.get(f"/v1/events/{event_id}", params={"tenant": "acme", "proof": "true"}).json()["leaf"])
    forged = leaf.replace(b'"outcome":"success"', b'"outcome":"failure"')
    assert forged != leaf
    conn = sqlite3.connect(console_server.data / "log.db")
    try:
        with conn:
            assert conn.execute("UPDATE entries SET leaf=? WHERE leaf=?", (forged, leaf)).rowcount == 1
    finally:
        conn.close()
    _open(page, console_server, event_id)
    expect(page.locator("dl.fields")).to_contain_text("failure")  # the page shows what is stored
    expect(page.locator("#verdict")).to_have_text("Not verified")
    expect(page.locator("#verdict-detail")).to_contain_text("the stored event or the log was altered")


def test_reading_an_event_is_recorded(console_server: Server, page: Page) -> None:
    event_id = _ingest(console_server)
    sign_in(page, console_server.url, "olga")
    _open(page, console_server, event_id)
    deadline = time.monotonic() + 30
    with console_server.client(console_server.admin) as c:
        while True:
            r = c.get("/v1/events", params={"tenant": "acme", "action": "auditkeep.console.event.read", "actor": "olga"})
            found = [e["event"] for e in r.json()["events"] if e["event"]["resource"]["id"] == event_id]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert found and found[0]["metadata"]["proof"] is True


def test_an_event_of_another_tenant_is_not_found(console_server: Server, page: Page) -> None:
    with console_server.client(console_server.admin) as c:
        r = c.post("/v1/events", params={"tenant": "other"}, json=[{"actor": {"id": "x"}, "action": "a.b"}])
        other_id = r.json()["receipts"][0]["id"]
    sign_in(page, console_server.url, "vic")
    resp = page.goto(f"{console_server.url}/ui/events/{other_id}")
    assert resp is not None and resp.status == 404
    resp = page.goto(f"{console_server.url}/ui/events/not-an-id")
    assert resp is not None and resp.status == 404
