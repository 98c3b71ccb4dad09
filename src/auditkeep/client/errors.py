"""What the SDK raises from reads, and what it reports (never raises) about deliveries."""

from __future__ import annotations

from dataclasses import dataclass

from auditkeep.errors import (
    APIError as APIError,  # one class for the server's and the SDK's refusals
)
from auditkeep.errors import ClosedError

__all__ = ["APIError", "AuthError", "ClientClosedError", "ServerUnavailableError", "Undelivered", "closed_error"]


class AuthError(APIError):
    """401 (missing or bad key) or 403 (the key lacks the scope or tenant)."""


class ServerUnavailableError(APIError):
    """The server could not be reached, or asked to come back later (429, 503)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(status, message)


class ClientClosedError(ClosedError):
    """``record()`` after ``close()``, or in a process forked from the one that made the
    client: a programming error, raised in the caller."""


def closed_error(forked: bool) -> ClientClosedError:
    if forked:
        return ClientClosedError(
            "this auditkeep client was created before the process forked; create one in each process"
        )
    return ClientClosedError("the auditkeep client is closed")


@dataclass(frozen=True)
class Undelivered:
    """An event that will not reach the server, given to ``on_drop`` / ``on_reject``.

    ``reason`` is ``"queue_full"`` (drop_newest), ``"timeout"`` (block waited too long),
    ``"closed"`` (nowhere to keep it at close) or ``"rejected"`` (the server refused it;
    ``status`` and ``detail`` carry its answer). ``event`` is the event's JSON.
    """

    id: str
    event: bytes
    reason: str
    status: int | None = None
    detail: str = ""
