"""Masking personal data in result rows (DataRow messages) before the client sees them.

A column whose name matches ``masking.columns`` is masked whatever it holds; the values of
text columns are searched with the detectors (e-mail addresses, card numbers that pass the
Luhn check, national ids) and each match replaced by its placeholder. A masked text value
reads ``[REDACTED:masked]``; a masked column of another type (a number, JSON, a date) is
sent as NULL, so the client can still decode the row.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditkeep.gateway.postgres.rules import Masking
from auditkeep.gateway.postgres.wire import Column, data_row, parse_data_row

# text, varchar, bpchar, name, unknown, citext has no fixed OID (it is matched by name only)
TEXT_OIDS = frozenset({25, 1043, 1042, 19, 705})
MASKED = b"[REDACTED:masked]"


@dataclass(frozen=True)
class RowPlan:
    """What to do with each column of a result."""

    whole: tuple[tuple[int, bytes | None], ...]  # (column, replacement) masked by name
    scan: tuple[int, ...]  # text columns whose values are searched


def plan(masking: Masking, columns: list[Column]) -> RowPlan | None:
    whole: list[tuple[int, bytes | None]] = []
    scan: list[int] = []
    for i, c in enumerate(columns):
        text = c.type_oid in TEXT_OIDS
        if masking.columns is not None and masking.columns(c.name.lower()):
            whole.append((i, MASKED if text else None))
        elif text and masking.detectors:
            scan.append(i)
    if not whole and not scan:
        return None
    return RowPlan(tuple(whole), tuple(scan))


def _maybe_pii(text: str) -> bool:
    if "@" in text or "-" in text:
        return True
    run = 0
    for ch in text:
        if ch.isdigit():
            run += 1
            if run >= 13:
                return True
        elif ch != " ":
            run = 0
    return False


def mask_row(masking: Masking, rp: RowPlan, body: bytes) -> bytes | None:
    """The DataRow message with masked values, or None when nothing changed."""
    values = parse_data_row(body)
    changed = False
    for i, repl in rp.whole:
        if i < len(values) and values[i] is not None:
            values[i] = repl
            changed = True
    for i in rp.scan:
        if i >= len(values):
            break
        raw = values[i]
        if raw is None:
            continue
        text = raw.decode("utf-8", "replace")
        if not _maybe_pii(text):
            continue
        new = text
        for d in masking.detectors:
            new = d.redact(new)
        if new != text:
            values[i] = new.encode()
            changed = True
    return data_row(values) if changed else None
