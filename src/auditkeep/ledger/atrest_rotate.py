"""Key rotation of an encrypted store.

``rotate`` re-wraps every per-tenant key under a new master key: one small transaction,
no event rewritten. ``reencrypt`` goes further and rewrites every payload under a new data
key per tenant, by a stored cursor, so a run that is stopped (even by ``kill -9``) is
finished by the next one; the old data keys are deleted only after a pass finds no payload
left under them. Writers notice the new generation at their next append transaction (the
store's ``encryption.epoch`` setting changes) and seal under it from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from auditkeep.crypto.atrest import Kms, generation, is_sealed
from auditkeep.ledger.atrest import DOCS_TID, EPOCH_KEY, EncryptedStore, _aad
from auditkeep.store.base import Entry, entry_key

CURSOR = "atrest.reencrypt"
CHUNK = 2000


class _State(msgspec.Struct):
    gen: int  # the data key generation this run writes under


@dataclass
class Reencrypted:
    tenant: str
    rewritten: int  # payloads rewritten by this run
    generation: int
    dropped: list[int]  # data key generations deleted at the end


def rotate(store: EncryptedStore, new: Kms) -> int:
    """Wrap every per-tenant key under ``new``; returns how many keys were re-wrapped."""
    tids = [DOCS_TID, *(h.tenant_id for h in store.heads())]
    return store.keys.rewrap(new, tids)


def _rewrite(store: EncryptedStore, tid: int, rows: Sequence[tuple[int, bytes, bytes | None]]) -> None:
    """Replace the sealed leaf and personal plaintext of entries (by index), in one transaction."""
    inner: Any = store.inner
    if store.dialect == "sqlite":
        with inner._write_lock, inner._guard(), inner._secure(inner._w) as w:
            w.executemany(
                "UPDATE entries SET leaf=?, sealed=? WHERE k=? AND length(leaf) > 0",
                [(leaf, sealed, entry_key(tid, i)) for i, leaf, sealed in rows],
            )
        return
    with inner._conn() as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "UPDATE entries SET leaf=%s, sealed=%s WHERE k=%s AND tenant_id=%s AND length(leaf) > 0",
            [(leaf, sealed, entry_key(tid, i), tid) for i, leaf, sealed in rows],
        )


def _reseal(store: EncryptedStore, tid: int, e: Entry, target: int) -> tuple[int, bytes, bytes | None] | None:
    """The entry's payload sealed under generation ``target``, or None when it already is."""
    stale_leaf = is_sealed(e.leaf) and generation(e.leaf) != target
    stale_sealed = e.sealed is not None and is_sealed(e.sealed) and generation(e.sealed) != target
    if not stale_leaf and not stale_sealed:
        return None
    keys = store.keys
    new = keys.key(tid, target)
    leaf = e.leaf
    if stale_leaf:
        aad = _aad(b"l", tid, e.index)
        leaf = new.seal(keys.key(tid, generation(leaf)).open(leaf, aad), aad)
    sealed = e.sealed
    if stale_sealed and sealed is not None:
        aad = _aad(b"s", tid, e.index)
        sealed = new.seal(keys.key(tid, generation(sealed)).open(sealed, aad), aad)
    return e.index, leaf, sealed


def reencrypt_tenant(
    store: EncryptedStore,
    tid: int,
    tenant: str,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
) -> Reencrypted:
    """Rewrite one tenant's payloads under a new data key, resuming a run that stopped.
    ``stop_after`` (chunks) ends the run early, as a crash would (for tests)."""
    inner = store.inner
    pos, raw = store.cursor(CURSOR, tid)
    if raw is None:
        target = store.keys.add_generation(tid).gen
        store.set_meta(EPOCH_KEY, f"{tid}.{target}.{time.time_ns()}")  # writers switch to it
        pos = 0
        store.set_cursor(CURSOR, tid, 0, msgspec.json.encode(_State(target)))
    else:
        target = msgspec.json.decode(raw, type=_State).gen
        store.keys.ensure(tid, create=False)
    done = chunks = 0
    while True:
        size = next(h.size for h in inner.heads() if h.tenant_id == tid)
        if pos >= size:
            break
        end = min(size, pos + CHUNK)
        rows = [r for e in inner.entries(tid, pos, end) if (r := _reseal(store, tid, e, target)) is not None]
        if rows:
            _rewrite(store, tid, rows)
        done += len(rows)
        if progress is not None:
            progress(end - pos)
        pos = end
        store.set_cursor(CURSOR, tid, pos, msgspec.json.encode(_State(target)))
        chunks += 1
        if stop_after is not None and chunks >= stop_after:
            return Reencrypted(tenant, done, target, [])
    dropped = [g for g in store.keys.generations(tid) if g != target]
    for g in dropped:
        store.keys.drop_generation(tid, g)
    store.set_cursor(CURSOR, tid, 0, None)  # finished: the next run starts a new generation
    return Reencrypted(tenant, done, target, dropped)


def reencrypt(
    store: EncryptedStore, tenants: Sequence[tuple[int, str]], progress: Callable[[int], None] | None = None
) -> list[Reencrypted]:
    return [reencrypt_tenant(store, tid, name, progress) for tid, name in tenants]
