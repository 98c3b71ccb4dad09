"""Exports of the log: JSON Lines, CSV, OCSF 1.8.0 and CEF, read page by page."""

from auditkeep.export.cef import to_cef
from auditkeep.export.formats import CSV_COLUMNS, FORMATS, MEDIA_TYPES, Formatter
from auditkeep.export.ocsf import classify, to_ocsf
from auditkeep.export.reading import iter_chunks, iter_pages, planned_total

__all__ = ["CSV_COLUMNS", "FORMATS", "MEDIA_TYPES", "Formatter", "classify", "iter_chunks", "iter_pages", "planned_total", "to_cef", "to_ocsf"]
