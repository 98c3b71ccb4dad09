"""Signing keys (and, later, envelope encryption and subject keys)."""

from auditkeep.crypto.signing import (
    KeyFileError,
    create_signing_key,
    format_signing_key,
    load_signing_key,
    parse_signing_key,
)

__all__ = [
    "KeyFileError",
    "create_signing_key",
    "format_signing_key",
    "load_signing_key",
    "parse_signing_key",
]
