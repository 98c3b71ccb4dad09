"""Fixtures of the console tests: a real server with console accounts, and a real Chromium
(Debian's, driven by Playwright; no browser is downloaded)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from console_support import ACCOUNTS, CHROMIUM, add_user, auditkeep
from http_server_support import Server


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("console") / "data"
    r = auditkeep(data, "init", process=False)
    assert r.returncode == 0, r.stderr
    for name, role in ACCOUNTS.items():
        add_user(data, "acme", name, role)
    add_user(data, "other", "alice", "admin")  # same name, another tenant
    srv = Server(data)
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium for a module. Not one per session: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, and asyncio.run() in later tests then fails."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    try:
        yield pg
    finally:
        ctx.close()

