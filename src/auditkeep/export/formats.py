"""The export formats: each turns a page of records into bytes (one event a line, CSV with a
header line first)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from auditkeep.export.cef import to_cef
from auditkeep.export.ocsf import to_ocsf
from auditkeep.ledger.reader import Record
from auditkeep.model.event import FIELD_PATHS, Event

FORMATS = ("jsonl", "csv", "ocsf", "cef")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "ocsf": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "cef": "text/plain; charset=utf-8",
}
EXTENSIONS = {"jsonl": "jsonl", "ocsf": "ocsf.jsonl", "csv": "csv", "cef": "cef"}

CSV_COLUMNS: tuple[str, ...] = ("index", "tenant", "leaf_hash", *(p for p in FIELD_PATHS if p != "tenant"), "metadata")
# A cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP's CSV
# injection advice); JSON Lines is the lossless format.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_encoder = msgspec.json.Encoder()


class Formatter:
    """Bytes for a format: ``head()`` once before the first page, then ``page(records)``."""

    def __init__(self, name: str) -> None:
        if name not in FORMATS:
            from auditkeep.model.errors import ValidationError

            raise ValidationError(f"must be one of {', '.join(FORMATS)}", "format")
        self.name = name
        self._page: Callable[[Sequence[Record]], bytes] = getattr(self, f"_{name}")

    def head(self) -> bytes:
        if self.name == "csv":
            return _csv_rows([list(CSV_COLUMNS)])
        return b""

    def page(self, records: Sequence[Record]) -> bytes:
        return self._page(records) if records else b""

    def one(self, rec: Record) -> bytes:
        """One record without the trailing newline (forwarders send records one by one)."""
        return self._page([rec]).rstrip(b"\r\n")

    @staticmethod
    def jsonl_one(rec: Record) -> bytes:
        return _encoder.encode(rec) + b"\n"

    @staticmethod
    def _jsonl(records: Sequence[Record]) -> bytes:
        buf = bytearray()
        for rec in records:
            _encoder.encode_into(rec, buf, -1)
            buf += b"\n"
        return bytes(buf)

    @staticmethod
    def _ocsf(records: Sequence[Record]) -> bytes:
        buf = bytearray()
        for rec in records:
            _encoder.encode_into(to_ocsf(rec.event, tenant=rec.tenant, index=rec.index, leaf_hash=rec.leaf_hash), buf, -1)
            buf += b"\n"
        return bytes(buf)

    @staticmethod
    def _cef(records: Sequence[Record]) -> bytes:
        return "".join(to_cef(r.event, tenant=r.tenant, index=r.index, leaf_hash=r.leaf_hash) + "\n" for r in records).encode()

    @staticmethod
    def _csv(records: Sequence[Record]) -> bytes:
        return _csv_rows([csv_row(r) for r in records])


def _csv_rows(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(rec: Record) -> list[str]:
    """The CSV cells of a record, in :data:`CSV_COLUMNS` order."""
    ev: Event = rec.event
    parts = {"actor": ev.actor, "resource": ev.resource, "source": ev.source, "submitter": ev.submitter}
    row = [str(rec.index), _cell(rec.tenant), rec.leaf_hash]
    for path in CSV_COLUMNS[3:-1]:
        head, _, tail = path.partition(".")
        if tail:
            obj = parts[head]
            row.append(_cell(getattr(obj, tail) if obj is not None else None))
        else:
            row.append(_cell(getattr(ev, head)))
    row.append(_cell(_encoder.encode(ev.metadata).decode()) if ev.metadata else "")
    return row
