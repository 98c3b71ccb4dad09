"""Key rotations as audit events: re-wrapping the data keys under a new master key,
re-encrypting payloads under new data keys, and a new checkpoint signing key each append an
event to the log of every tenant they touch, as retention, erasure and the archive do.

The events name key generations, master key ids (fingerprints, docs/encryption.md), verifier
keys (public) and counts; never key material.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditkeep.crypto.atrest import Kms
from auditkeep.errors import UserError
from auditkeep.ledger.atrest import EncryptedStore
from auditkeep.ledger.atrest_rotate import Reencrypted, reencrypt_tenant, rotate
from auditkeep.ledger.keyring import LogKey
from auditkeep.ledger.ledger import Ledger

ROTATED = "auditkeep.encryption.rotated"
REENCRYPTED = "auditkeep.encryption.reencrypted"
SIGNING_ROTATED = "auditkeep.signing_key.rotated"
DEFAULT_TENANT = "default"


def _event(action: str, actor: dict[str, str], metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "category": "admin",
        "outcome": "success",
        "source": {"service": "auditkeep"},
        "metadata": metadata,
    }


def _tenants(ledger: Ledger) -> list[str]:
    """Every tenant's name; a store without any records in its default tenant."""
    return [h.tenant for h in ledger.tenants()] or [DEFAULT_TENANT]


def _store(ledger: Ledger) -> EncryptedStore:
    store = ledger.store
    if not isinstance(store, EncryptedStore):
        raise UserError("this store is not encrypted (encryption is chosen at `auditkeep init --encrypt`)")
    return store


def rotate_master_key(ledger: Ledger, new: Kms, actor: dict[str, str]) -> int:
    """Re-wrap every data key under ``new`` (no event rewritten), then record
    ``auditkeep.encryption.rotated`` in every tenant's log; returns how many keys."""
    store = _store(ledger)
    old_id = store.keys.kms.key_id
    n = rotate(store, new)
    for tenant in _tenants(ledger):
        tid = ledger.tenant_id(tenant, create=True)
        meta = {"from_master_key": old_id, "to_master_key": new.key_id, "keys_rewrapped": n,
                "data_key_generations": store.keys.generations(tid)}
        ledger.append_own([_event(ROTATED, actor, meta)], tenant, ledger.submitter)
    return n


def reencrypt_all(
    ledger: Ledger, actor: dict[str, str], progress: Callable[[int], None] | None = None
) -> list[Reencrypted]:
    """Rewrite every tenant's payloads under a new data key (resuming a stopped run) and
    record ``auditkeep.encryption.reencrypted`` in each tenant's log once it is done."""
    store = _store(ledger)
    out = []
    for head in ledger.tenants():
        size = head.size
        r = reencrypt_tenant(store, head.tenant_id, head.tenant, progress)
        meta = {"generation": r.generation, "payloads_rewritten": r.rewritten, "entries": size,
                "generations_deleted": r.dropped}
        ledger.append_own([_event(REENCRYPTED, actor, meta)], head.tenant, ledger.submitter)
        out.append(r)
    return out


def record_signing_rotation(ledger: Ledger, old: LogKey, new: LogKey, actor: dict[str, str]) -> None:
    """Record ``auditkeep.signing_key.rotated`` in every tenant's log: the previous and new
    verifier keys (public) and the size the tenant's log had when the new key took over."""
    for tenant in _tenants(ledger):
        meta = {"previous_key": old.vkey, "new_key": new.vkey, "first_size": new.first_size(tenant)}
        ledger.append_own([_event(SIGNING_ROTATED, actor, meta)], tenant, ledger.submitter)
