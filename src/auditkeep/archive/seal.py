"""Sealing a segment's leaves when the store is encrypted at rest.

Each segment gets a data key of its own (AES-256-GCM), wrapped by the store's master key
(the same envelope as :mod:`auditkeep.ledger.atrest`); the manifest carries the wrapped key,
the master key's id and the context it was wrapped under, and each line holds its leaf
sealed (``"sealed"``: base64 of nonce and ciphertext, bound to the segment and the index).
A key of the segment's own, not the tenant's data key: re-encryption deletes old tenant
data keys, and a write-once segment cannot be re-sealed, so it must not depend on them.

The leaf hashes stay over the plaintext leaf and are in the manifest, so a segment still
proves itself against the signed checkpoint without the master key (the data file is the one
the signed segment note names); with the master key the lines are opened and each leaf is
checked against its hash (:mod:`auditkeep.archive.check`).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditkeep.archive.check import FORMAT, line_aad
from auditkeep.crypto.atrest import Kms
from auditkeep.ledger.atrest import EncryptedStore
from auditkeep.store.base import Store

ALGORITHM = "aes-256-gcm"


class SegmentSealer:
    """Seals the leaves of one segment under a fresh data key wrapped by ``kms``."""

    def __init__(self, kms: Kms, tenant: str, first: int, end: int) -> None:
        key = os.urandom(32)
        self.context = f"{FORMAT} {tenant}/{first}-{end}"
        self._aead = AESGCM(key)
        self._info = {
            "algorithm": ALGORITHM,
            "master_key": kms.key_id,
            "context": self.context,
            "wrapped_key": base64.b64encode(kms.wrap(key, self.context.encode())).decode("ascii"),
        }

    def seal(self, index: int, leaf: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, leaf, line_aad(self.context, index))).decode("ascii")

    @property
    def manifest(self) -> dict[str, Any]:
        """What the manifest's ``data.sealed`` says (no key in the clear)."""
        return dict(self._info)


def sealer_kms(store: Store) -> Kms | None:
    """The master key segments of ``store`` are sealed under: None when it is not encrypted."""
    return store.keys.kms if isinstance(store, EncryptedStore) else None
