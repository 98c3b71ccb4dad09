"""Errors a caller can cause with bad input: each names where the problem is."""

from __future__ import annotations

import re

from auditkeep.errors import UserError
from auditkeep.model.event import ACTOR_TYPES, CATEGORIES, OUTCOMES, SEVERITIES


class ValidationError(UserError, ValueError):
    """An event (or a batch) was rejected; ``path`` names the field, ``position`` the event."""

    def __init__(self, message: str, path: str = "", position: int | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.position = position
        self.line = line
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        text = f"{where}{self.message}"
        if self.line is not None:
            text = f"line {self.line}: {text}"
        elif self.position is not None:
            text = f"event {self.position}: {text}"
        return text

    def at(self, position: int) -> ValidationError:
        """The same error, attributed to the event at ``position`` in a batch."""
        return type(self)(self.message, self.path, position, self.line)

    def with_line(self, line: int) -> ValidationError:
        """The same error, attributed to ``line`` of an input file."""
        return type(self)(self.message, self.path, self.position, line)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.render(), "field": self.path, "reason": self.message}
        if self.position is not None:
            out["position"] = self.position
        if self.line is not None:
            out["line"] = self.line
        return out


class MalformedJSON(ValidationError):
    """The input is not JSON (or breaks a rule of JSON such as a duplicate key): the server
    answers 400 where an event that parses but does not validate gets 422."""


class ConflictError(UserError, ValueError):
    """An event id was reused with different content."""

    def __init__(self, event_id: str, position: int | None = None) -> None:
        self.event_id = event_id
        self.position = position
        where = f"event {position}: " if position is not None else ""
        super().__init__(f"{where}id {event_id} already exists with different content")


_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_INDEX = re.compile(r"^\[(\d+)\]")


def from_msgspec(exc: Exception, batch: bool = False) -> ValidationError:
    """Turn a msgspec error ("Expected `str`, got `int` - at `$[3].actor.id`") into ours."""
    m = _MSGSPEC_AT.match(str(exc))
    msg = m.group("msg") if m else str(exc)
    path = (m.group("path") or "") if m else ""
    position: int | None = None
    if batch:
        im = _INDEX.match(path)
        if im:
            position = int(im.group(1))
            path = path[im.end():]
    path = path.lstrip(".")
    unknown = re.match(r"Object contains unknown field `(.*)`$", msg)
    if unknown:
        field = unknown.group(1)
        path = f"{path}.{field}" if path else field
        msg = "unknown field"
    missing = re.match(r"Object missing required field `(.*)`$", msg)
    if missing:
        field = missing.group(1)
        path = f"{path}.{field}" if path else field
        msg = "required field is missing"
    if msg.startswith("Invalid enum value"):
        last = path.rpartition(".")[2]
        allowed = _ENUMS.get(last)
        if allowed:
            msg = f"expected one of: {', '.join(allowed)} ({msg.split(' ', 3)[-1]} given)"
    elif "matching regex" in msg:
        last = path.rpartition(".")[2]
        msg = _PATTERN_HINTS.get(last, "expected a string of the documented form")
    elif msg.startswith("Expected"):
        msg = "expected" + msg[len("Expected"):]
    return ValidationError(msg, path, position)


_ENUMS = {
    "type": ACTOR_TYPES,
    "category": CATEGORIES,
    "outcome": OUTCOMES,
    "severity": SEVERITIES,
}

_PATTERN_HINTS = {
    "time": "expected an RFC 3339 timestamp with a timezone, e.g. 2024-05-01T12:00:00Z",
    "received_at": "expected an RFC 3339 timestamp with a timezone",
    "id": "expected a UUID such as 0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e",
    "action": "expected a dotted verb such as user.login (letters, digits, _ and -)",
    "tenant": "expected 1-63 lowercase letters, digits, '.', '_' or '-'",
}
