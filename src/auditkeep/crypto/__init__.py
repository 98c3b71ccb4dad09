"""Signing keys (and, later, envelope encryption and subject keys).

Its names are loaded on first use (``lazyload``): the settings (``config.py``) need the
at-rest settings of ``atrest.py`` alone, not the signing keys and the Merkle code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.crypto.signing import (
        KeyFileError,
        create_signing_key,
        format_signing_key,
        load_signing_key,
        parse_signing_key,
    )

_LAZY = {
    "KeyFileError": "auditkeep.crypto.signing",
    "create_signing_key": "auditkeep.crypto.signing",
    "format_signing_key": "auditkeep.crypto.signing",
    "load_signing_key": "auditkeep.crypto.signing",
    "parse_signing_key": "auditkeep.crypto.signing",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = [
    "KeyFileError",
    "create_signing_key",
    "format_signing_key",
    "load_signing_key",
    "parse_signing_key",
]
