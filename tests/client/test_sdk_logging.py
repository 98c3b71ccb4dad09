"""The logging handler: audit records become events, other records are ignored."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sdk_support import all_events

from auditkeep.client import context
from auditkeep.integrations import AuditHandler
from auditkeep.ledger import Ledger


@pytest.fixture
def logger(embedded: Ledger) -> Iterator[logging.Logger]:
    log = logging.getLogger("test_sdk_logging.app")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = AuditHandler(embedded)
    log.addHandler(handler)
    try:
        yield log
    finally:
        log.removeHandler(handler)


def test_audit_records_become_events(logger: logging.Logger, embedded: Ledger) -> None:
    with context(actor="alice", request_id="r-5"):
        logger.warning("invoice %s approved", 42, extra={"audit": {
            "action": "invoice.approve", "resource": {"type": "invoice", "id": "42"}, "outcome": "success"}})  # fmt: skip
    logger.info("just a log line")  # ignored
    logger.error("no audit here", extra={"other": 1})  # ignored
    logger.critical("explicit", extra={"audit": {"actor": {"id": "bob"}, "action": "key.revoke", "severity": "low",
                                                 "metadata": {"key": "k1"}}})  # fmt: skip
    events = all_events(embedded)
    assert len(events) == 2
    first, second = events
    assert first.action == "invoice.approve" and first.actor.id == "alice"
    assert first.source is not None and first.source.request_id == "r-5"
    assert first.severity == "medium"
    assert first.metadata == {"message": "invoice 42 approved", "logger": "test_sdk_logging.app"}
    assert first.time is not None and first.time.endswith("Z")
    assert second.actor.id == "bob" and second.severity == "low"
    assert second.metadata["key"] == "k1"


def test_bad_audit_record_does_not_raise(logger: logging.Logger, embedded: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    logger.info("oops", extra={"audit": {"action": "missing.actor"}})
    assert all_events(embedded) == []
    assert "actor" in capsys.readouterr().err  # logging's handleError reports it
