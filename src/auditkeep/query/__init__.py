"""Searching the log: filters parsed once (:class:`Filters`), for the stores and in memory."""

from auditkeep.query.filters import (
    SEARCH_FIELDS,
    Filters,
    parse_metadata,
    parse_time,
    search_kwargs,
)

__all__ = ["SEARCH_FIELDS", "Filters", "parse_metadata", "parse_time", "search_kwargs"]
