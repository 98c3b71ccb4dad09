"""The words of a text as the full-text index sees them, on either store's projection
(PostgreSQL's and the keyed tokens of an encrypted store, ``ledger/atrest_blind.py``).

Kept apart from ``store/postgres_search.py`` because that module imports psycopg, which a
SQLite process (every CLI command on the default store) must not pay for.
"""

from __future__ import annotations

import re
import unicodedata

_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_TOKEN = re.compile(r"[^\W_]+")
MAX_LEXEME_BYTES = 2046  # PostgreSQL refuses lexemes over 2047 bytes


def _clip(token: str) -> str:
    raw = token.encode()
    if len(raw) <= MAX_LEXEME_BYTES:
        return token
    return raw[:MAX_LEXEME_BYTES].decode(errors="ignore")


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the full-text index sees them."""
    if text.isascii():
        found = _ASCII_TOKEN.findall(text.lower())
    else:
        stripped = "".join(
            c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
        )
        found = _TOKEN.findall(unicodedata.normalize("NFC", stripped).lower())
    return [t if len(t) <= MAX_LEXEME_BYTES // 4 else _clip(t) for t in found]
