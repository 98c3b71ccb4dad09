"""Input formats of ``auditkeep ingest --format``: name -> parser of a whole input."""

from __future__ import annotations

from collections.abc import Callable

from auditkeep.model.event import Event

FORMATS: dict[str, Callable[[bytes], list[Event]]] = {}
