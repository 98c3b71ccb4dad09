"""Fixtures of the SDK tests: an embedded log. Helpers the tests import live in
sdk_support.py (a real uvicorn for ASGI apps, reading every event) and sdk_server.py (the
real server): ``from conftest import`` could find another directory's conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger, LedgerConfig


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Ledger]:
    """The embedded ledger, as an application's AuditLog."""
    ledger = Ledger.open(tmp_path / "embedded", LedgerConfig(durability="normal"))
    try:
        yield ledger
    finally:
        ledger.close()
