"""The log's verifier keys as the store records them: every key that has signed its
checkpoints, oldest first, with the size each tenant's log had when the key started signing.

A reader with nothing else to go on checks checkpoints against these keys, and says so:
someone who can write to the store can replace them too, which is why ``verify --key``
takes the keys from elsewhere instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from auditkeep.errors import IntegrityError
from auditkeep.log.note import NoteVerifier
from auditkeep.store.base import Store

META_KEYS = "verifier_keys"  # JSON list of LogKey, oldest first
META_FIRST_KEY = "verifier_key"  # the key the log was created with (all older stores have)


def origin_for(log_id: str, tenant: str) -> str:
    """The name a tenant's checkpoints are signed under (their origin line)."""
    return f"auditkeep.local/{log_id}/{tenant}"


class LogKey(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One signing key of the log, by its log-wide verifier key (name ``auditkeep.local/<log id>``)."""

    vkey: str
    added_ns: int = 0
    # tenant -> size of its log when this key started signing; absent tenants: from the start
    first_sizes: dict[str, int] = {}

    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.vkey)

    def first_size(self, tenant: str) -> int:
        return self.first_sizes.get(tenant, 0)


_keys = msgspec.json.Decoder(list[LogKey])
_encode = msgspec.json.Encoder()


class KeyringError(IntegrityError, ValueError):
    """The store's record of its verifier keys is unreadable."""


def load_keys(store: Store) -> list[LogKey]:
    """The log's keys, oldest first (empty for a store that has none yet)."""
    raw = store.meta(META_KEYS)
    if raw is not None:
        try:
            keys = _keys.decode(raw)
            for k in keys:
                k.verifier()
        except (msgspec.DecodeError, ValueError) as exc:
            raise KeyringError(f"the store's verifier keys are unreadable: {exc}") from None
        return keys
    first = store.meta(META_FIRST_KEY)
    return [LogKey(first)] if first else []


def save_keys(store: Store, keys: Sequence[LogKey]) -> None:
    store.set_meta(META_KEYS, _encode.encode(list(keys)).decode())
    if keys:
        store.set_meta(META_FIRST_KEY, keys[0].vkey)
