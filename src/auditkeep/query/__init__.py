"""Searching the log: filters as people type them."""

from auditkeep.query.filters import SEARCH_FIELDS, parse_metadata, parse_time, search_kwargs

__all__ = ["SEARCH_FIELDS", "parse_metadata", "parse_time", "search_kwargs"]
