"""A ``logging.Handler`` that turns audit log records into events.

    logging.getLogger("app").addHandler(AuditHandler(client))
    log.info("invoice approved", extra={"audit": {"action": "invoice.approve",
                                                  "resource": {"type": "invoice", "id": "42"}}})

Only records carrying an ``audit`` mapping become events; every other record is ignored,
so the handler can sit on a busy logger. The event takes its time from the record, its
severity from the level (unless given), and the message and logger name as metadata; the
audit context (actor, request id) is merged as for any ``record()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from auditkeep.client.context import merge_into
from auditkeep.client.protocol import AuditLog
from auditkeep.model.timefmt import format_rfc3339

__all__ = ["AuditHandler"]

_SEVERITY = ((logging.CRITICAL, "critical"), (logging.ERROR, "high"), (logging.WARNING, "medium"), (logging.INFO, "info"))


def severity_of(levelno: int) -> str:
    for level, name in _SEVERITY:
        if levelno >= level:
            return name
    return "debug"


class AuditHandler(logging.Handler):
    """Records ``extra={"audit": {...}}`` log records in an :class:`AuditLog`."""

    def __init__(self, log: AuditLog, level: int = logging.NOTSET, *, key: str = "audit") -> None:
        super().__init__(level)
        self.log = log
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        return isinstance(getattr(record, self.key, None), Mapping) and bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, self.key, None)
        if not isinstance(audit, Mapping):
            return
        try:
            fields: dict[str, Any] = dict(audit)
            fields.setdefault("time", format_rfc3339(int(record.created * 1_000_000) * 1000))
            fields.setdefault("severity", severity_of(record.levelno))
            meta = dict(fields.get("metadata") or {})
            meta.setdefault("message", record.getMessage())
            meta.setdefault("logger", record.name)
            fields["metadata"] = meta
            # Merged here (not only in the client) so the embedded log gets the context too.
            self.log.record(**merge_into(fields))
        except Exception:
            self.handleError(record)
