"""What every source shares: the error that sends a record to quarantine."""

from __future__ import annotations

from auditkeep.errors import UserError


class SourceError(UserError, ValueError):
    """A record a source could not parse or map.

    It is never dropped: the caller keeps ``raw`` (the bytes as received), the ``source``
    name and the ``reason`` in the quarantine table so it can be re-ingested after a fix.
    """

    def __init__(self, source: str, reason: str, raw: bytes) -> None:
        self.source = source
        self.reason = reason
        self.raw = raw
        super().__init__(f"{source}: {reason}")


class UnreadableRequest(SourceError):
    """A whole request a source could not read (not JSON, not its format, too large, bad
    compression), as opposed to one record of it: the request is refused whole."""
