"""An encrypted store: the :class:`Store` contract kept over a store that holds ciphertext.

:class:`EncryptedStore` wraps a SQLite or PostgreSQL store. What the ledger writes (leaf
bytes, personal plaintext, document data, consumer state) is sealed with AES-256-GCM under
per-tenant data keys before it reaches the store, and opened again when read, so everything
above this layer sees plaintext and leaf hashes stay over the plaintext leaf. The search
projection receives keyed tokens instead of values (HMAC-SHA256 under a per-tenant index
key): exact filters and whole-word full text keep working; prefixes and substrings do not
(docs/encryption.md says what works).

Nothing here is on the path of an unencrypted store: :func:`at_rest` returns the store as it
is unless the store was initialised encrypted.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec

from auditkeep.crypto.atrest import (
    ALGORITHM,
    BlindIndex,
    DataKey,
    DecryptError,
    EncryptionSettings,
    KeyUnavailable,
    Kms,
    generation,
    is_sealed,
    key_file_path,
    new_master_key,
    resolve_kms,
    write_key_file,
)
from auditkeep.errors import ConfigError, UserError
from auditkeep.ledger.atrest_blind import EncryptedSearchError, blind_query, blind_row, token_text

__all__ = ["EncryptedSearchError", "EncryptedStore", "Keyring", "at_rest"]
from auditkeep.ledger.cosigned import COLLECTION as COSIGNED
from auditkeep.store.base import (
    KEY_SHIFT,
    AppendTxn,
    CheckpointRow,
    Doc,
    Entry,
    Head,
    Lease,
    ProjectedRow,
    Query,
    Store,
    TileKey,
    entry_key,
)

META_KEY = "encryption"
# Changed whenever a tenant gets a new data key generation (re-encryption): writers read it
# at each append transaction and reload their keys, so none goes on sealing under a key
# that re-encryption is about to delete.
EPOCH_KEY = "encryption.epoch"
KEYS = "atrest.keys"  # wrapped per-tenant keys, one document each
# Documents kept in the clear: the wrapped keys themselves, and witnesses' cosignatures
# (public, and what verify needs when it runs without the master key).
PLAIN_COLLECTIONS = frozenset({KEYS, COSIGNED})
DOCS_TID = 0  # the key set of documents and consumer state (tenant ids start at 1)
_MASK = (1 << KEY_SHIFT) - 1
_BLIND_SUBJECT = "~"
_RECENT = 10_000



class _Wrapped(msgspec.Struct):
    master: str  # key id of the master key it is wrapped under
    wrapped: str  # base64


def _aad(kind: bytes, tenant_id: int, index: int) -> bytes:
    return kind + tenant_id.to_bytes(8, "big") + index.to_bytes(8, "big")


class Keyring:
    """The per-tenant keys of one store, unwrapped on first use and kept in memory."""

    def __init__(self, store: Store, kms: Kms) -> None:
        self.store = store
        self.kms = kms
        self._lock = threading.Lock()
        self._data: dict[int, dict[int, DataKey]] = {}
        self._active: dict[int, DataKey] = {}
        self._index: dict[int, BlindIndex] = {}

    def _load(self, tid: int) -> None:
        data: dict[int, DataKey] = {}
        for d in self.store.doc_list(KEYS, tenant=f"#{tid}", limit=100_000):
            rec = msgspec.json.decode(d.data, type=_Wrapped)
            if rec.master != self.kms.key_id:
                raise KeyUnavailable(
                    f"the keys of this store are wrapped under master key {rec.master}; "
                    f"the master key configured is {self.kms.key_id}"
                )
            raw = self.kms.unwrap(base64.b64decode(rec.wrapped), d.id.encode())
            kind = d.id.rsplit(".", 1)[1]
            if kind == "i":
                self._index[tid] = BlindIndex(raw)
            else:
                gen = int(kind[1:])
                data[gen] = DataKey(gen, raw)
        if data:
            self._data[tid] = data
            self._active[tid] = data[max(data)]

    def _insert(self, tid: int, name: str) -> None:
        import os

        doc_id = f"{tid}.{name}"
        rec = _Wrapped(self.kms.key_id, base64.b64encode(self.kms.wrap(os.urandom(32), doc_id.encode())).decode())
        # insert-if-absent: two writers creating the same tenant's key keep one of them
        self.store.doc_insert(Doc(KEYS, doc_id, f"#{tid}", time.time_ns(), None, msgspec.json.encode(rec)))

    def ensure(self, tid: int, create: bool) -> None:
        if tid in self._active and tid in self._index:
            return
        with self._lock:
            self._load(tid)
            if create and not self.store.read_only:
                if tid not in self._index:
                    self._insert(tid, "i")
                if tid not in self._active:
                    self._insert(tid, "d1")
                self._load(tid)
            if tid not in self._active or tid not in self._index:
                raise KeyUnavailable(f"no data key for tenant id {tid} in this store")

    def active(self, tid: int) -> DataKey:
        k = self._active.get(tid)
        if k is None:
            self.ensure(tid, create=False)
            k = self._active[tid]
        return k

    def key(self, tid: int, gen: int) -> DataKey:
        k = self._data.get(tid, {}).get(gen)
        if k is None:
            with self._lock:
                self._load(tid)  # another process may have added a generation since
            k = self._data.get(tid, {}).get(gen)
            if k is None:
                raise KeyUnavailable(f"data key generation {gen} of tenant id {tid} is not in this store")
        return k

    def index(self, tid: int) -> BlindIndex:
        b = self._index.get(tid)
        if b is None:
            self.ensure(tid, create=False)
            b = self._index[tid]
        return b

    def forget(self) -> None:
        """Drop every unwrapped key; they are loaded again on next use."""
        with self._lock:
            self._data.clear()
            self._active.clear()

    def generations(self, tid: int) -> list[int]:
        self.ensure(tid, create=False)
        return sorted(self._data[tid])

    def add_generation(self, tid: int) -> DataKey:
        """A new data key for ``tid``, made the active one (what re-encryption writes under)."""
        gen = max(self.generations(tid)) + 1
        self._insert(tid, f"d{gen}")
        with self._lock:
            self._load(tid)
        return self._data[tid][gen]

    def drop_generation(self, tid: int, gen: int) -> None:
        self.store.doc_delete(KEYS, f"{tid}.d{gen}")
        with self._lock:
            self._data.get(tid, {}).pop(gen, None)

    def rewrap(self, new: Kms, tenant_ids: Sequence[int]) -> int:
        """Wrap every stored key under ``new`` in one transaction; returns how many."""
        docs: list[Doc] = []
        for tid in tenant_ids:
            for d in self.store.doc_list(KEYS, tenant=f"#{tid}", limit=100_000):
                rec = msgspec.json.decode(d.data, type=_Wrapped)
                if rec.master != self.kms.key_id:
                    raise KeyUnavailable(
                        f"key {d.id} is wrapped under master key {rec.master}, not the current {self.kms.key_id}"
                    )
                raw = self.kms.unwrap(base64.b64decode(rec.wrapped), d.id.encode())
                again = _Wrapped(new.key_id, base64.b64encode(new.wrap(raw, d.id.encode())).decode())
                docs.append(replace(d, data=msgspec.json.encode(again)))
        self.store.doc_put_many(docs)
        self.kms = new
        return len(docs)


class _Txn:
    """The append transaction of an encrypted store: entries are sealed on their way in."""

    def __init__(self, outer: EncryptedStore, inner: AppendTxn) -> None:
        self._o = outer
        self._t = inner

    def head(self, tenant_id: int) -> Head:
        return self._t.head(tenant_id)

    def existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        return {k: self._o.open_entry(tenant_id, e) for k, e in self._t.existing(tenant_id, ids).items()}

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return self._t.read_tiles(tenant_id, keys)

    def salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        names = {self._o.blind_subject(tenant_id, s): s for s in subjects}
        return {names[b]: salt for b, salt in self._t.salts(tenant_id, list(names)).items()}

    def erasures(self) -> int:
        return self._t.erasures()

    def write(
        self,
        tenant_id: int,
        entries: Sequence[Entry],
        tiles: Mapping[TileKey, bytes],
        head: Head,
        checkpoint: CheckpointRow | None = None,
    ) -> None:
        seal = self._o.seal_entry
        self._t.write(tenant_id, [seal(tenant_id, e) for e in entries], tiles, head, checkpoint)


class EncryptedStore:
    """A store whose payloads are sealed under per-tenant data keys (see the module doc).

    It has no ``__getattr__`` on purpose: helpers that look for a store's fast raw readers
    (``entry_rows``) must not find the inner store's, which return ciphertext; they fall
    back to :meth:`entries`, which opens it. For the same reason :meth:`reader_opener` is
    None: worker processes would open the inner store."""

    def __init__(self, inner: Store, kms: Kms, settings: EncryptionSettings, data_dir: Path | None = None) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.read_only = inner.read_only
        self.keys = Keyring(inner, kms)
        self.encryption = settings  # how a child process of this store finds the master key
        self.data_dir = data_dir
        self.directory: Path | None = getattr(inner, "directory", None)
        # Entries opened by the last reads, by key: the projector reads a chunk and then
        # projects it, and would otherwise read and open each entry twice.
        self._recent: dict[int, Entry] = {}
        self._epoch = inner.meta(EPOCH_KEY)

    # sealing ---------------------------------------------------------------------------------

    def blind_subject(self, tenant_id: int, subject: str) -> str:
        if subject.startswith(_BLIND_SUBJECT):
            return subject
        return _BLIND_SUBJECT + self.keys.index(tenant_id).token("subject", subject)

    def seal_entry(self, tid: int, e: Entry) -> Entry:
        dk = self.keys.active(tid)
        leaf = dk.seal(e.leaf, _aad(b"l", tid, e.index)) if e.leaf else e.leaf
        subject = sealed = None
        if e.subject is not None:
            subject = self.blind_subject(tid, e.subject)
            if e.sealed is not None:
                # the subject travels inside the ciphertext; the column holds its token
                sealed = dk.seal(e.subject.encode() + b"\x00" + e.sealed, _aad(b"s", tid, e.index))
        return Entry(e.index, e.id, e.received_ns, leaf, subject, sealed)

    def open_entry(self, tid: int, e: Entry) -> Entry:
        leaf = e.leaf
        subject, sealed = e.subject, e.sealed
        try:
            if is_sealed(leaf):
                leaf = self.keys.key(tid, generation(leaf)).open(leaf, _aad(b"l", tid, e.index))
            if sealed is not None and is_sealed(sealed):
                plain = self.keys.key(tid, generation(sealed)).open(sealed, _aad(b"s", tid, e.index))
                name, _, sealed = plain.partition(b"\x00")
                subject = name.decode()
        except DecryptError as exc:
            raise DecryptError(f"entry {e.index} of tenant id {tid}: {exc}") from None
        return Entry(e.index, e.id, e.received_ns, leaf, subject, sealed)

    def _doc_key(self) -> DataKey:
        return self.keys.active(DOCS_TID)

    def _seal_doc(self, d: Doc) -> Doc:
        if d.collection == KEYS:
            raise UserError(f"collection {KEYS} belongs to the key ring")
        if d.collection in PLAIN_COLLECTIONS:
            return d
        return replace(d, data=self._doc_key().seal(d.data, b"d" + d.collection.encode() + b"\x00" + d.id.encode()))

    def _open_doc(self, d: Doc | None) -> Doc | None:
        if d is None or not is_sealed(d.data):
            return d
        k = self.keys.key(DOCS_TID, generation(d.data))
        return replace(d, data=k.open(d.data, b"d" + d.collection.encode() + b"\x00" + d.id.encode()))

    def _token_texts(self, tid: int, indexes: Sequence[int], drop_sealed: bool = False) -> dict[int, str]:
        bi = self.keys.index(tid)
        out: dict[int, str] = {}
        for k, e in self.inner.entries_by_key([entry_key(tid, i) for i in indexes]).items():
            o = self.open_entry(tid, e)
            if o.leaf:
                out[k] = token_text(bi, msgspec.structs.replace(o, sealed=None) if drop_sealed else o)
        return out

    # the Store contract ----------------------------------------------------------------------

    @property
    def projection_writable(self) -> bool:
        return self.inner.projection_writable

    @property
    def temporary_projection(self) -> bool:
        return bool(getattr(self.inner, "temporary_projection", False))

    def use_temporary_projection(self) -> None:
        switch = getattr(self.inner, "use_temporary_projection", None)
        if switch is not None:
            switch()

    def tenant(self, name: str, create: bool = False) -> Head | None:
        h = self.inner.tenant(name, create)
        if h is not None and create and not self.read_only:
            self.keys.ensure(h.tenant_id, create=True)
        return h

    def heads(self) -> list[Head]:
        return self.inner.heads()

    @contextmanager
    def _append(self, tenant_ids: Sequence[int]) -> Iterator[AppendTxn]:
        epoch = self.inner.meta(EPOCH_KEY)
        if epoch != self._epoch:
            self.keys.forget()
            self._epoch = epoch
        for tid in tenant_ids:
            self.keys.ensure(tid, create=True)
        with self.inner.append_txn(tenant_ids) as t:
            yield _Txn(self, t)

    def append_txn(self, tenant_ids: Sequence[int]) -> AbstractContextManager[AppendTxn]:
        return self._append(tenant_ids)

    def entries(self, tenant_id: int, start: int, end: int) -> Iterator[Entry]:
        recent = self._recent
        for e in self.inner.entries(tenant_id, start, end):
            o = self.open_entry(tenant_id, e)
            if len(recent) >= _RECENT:
                recent.clear()
            recent[entry_key(tenant_id, e.index)] = o
            yield o

    def entry_by_id(self, tenant_id: int, event_id: bytes) -> Entry | None:
        e = self.inner.entry_by_id(tenant_id, event_id)
        return None if e is None else self.open_entry(tenant_id, e)

    def entries_by_key(self, keys: Sequence[int]) -> dict[int, Entry]:
        return {k: self.open_entry(k >> KEY_SHIFT, e) for k, e in self.inner.entries_by_key(keys).items()}

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return self.inner.read_tiles(tenant_id, keys)

    def tiles_range(self, tenant_id: int, level: int, start: int, end: int) -> dict[int, bytes]:
        return self.inner.tiles_range(tenant_id, level, start, end)

    def checkpoints(self, tenant_id: int) -> Iterator[CheckpointRow]:
        return self.inner.checkpoints(tenant_id)

    def checkpoint_at(self, tenant_id: int, size: int) -> CheckpointRow | None:
        return self.inner.checkpoint_at(tenant_id, size)

    def latest_checkpoint(self, tenant_id: int) -> CheckpointRow | None:
        return self.inner.latest_checkpoint(tenant_id)

    def checkpoints_newest(self, tenant_id: int, below: int | None, limit: int) -> list[CheckpointRow]:
        return self.inner.checkpoints_newest(tenant_id, below, limit)

    def checkpoint_from(self, tenant_id: int, size: int) -> CheckpointRow | None:
        return self.inner.checkpoint_from(tenant_id, size)

    def reader_opener(self) -> None:
        """None: a worker would read the inner store's ciphertext (it holds no master key)."""
        return None

    def subject_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        names = {self.blind_subject(tenant_id, s): s for s in subjects}
        return {names[b]: salt for b, salt in self.inner.subject_salts(tenant_id, list(names)).items()}

    def cursor(self, name: str, tenant_id: int) -> tuple[int, bytes | None]:
        pos, state = self.inner.cursor(name, tenant_id)
        if state is not None and is_sealed(state):
            k = self.keys.key(DOCS_TID, generation(state))
            state = k.open(state, b"c" + name.encode() + b"\x00" + str(tenant_id).encode())
        return pos, state

    def set_cursor(self, name: str, tenant_id: int, position: int, state: bytes | None = None) -> None:
        if state is not None:
            state = self._doc_key().seal(state, b"c" + name.encode() + b"\x00" + str(tenant_id).encode())
        self.inner.set_cursor(name, tenant_id, position, state)

    def projection_position(self, tenant_id: int) -> int:
        return self.inner.projection_position(tenant_id)

    def project(self, tenant_id: int, rows: Sequence[ProjectedRow], position: int) -> None:
        if not rows:
            self.inner.project(tenant_id, rows, position)
            return
        bi = self.keys.index(tenant_id)
        recent = self._recent
        entries = {r.key: e for r in rows if (e := recent.get(r.key)) is not None}
        if len(entries) < len(rows):
            entries.update(self.entries_by_key([r.key for r in rows if r.key not in entries]))
        self.inner.project(tenant_id, [blind_row(bi, r, entries[r.key]) for r in rows], position)

    def reset_projection(self) -> None:
        self.inner.reset_projection()

    def search(self, q: Query) -> list[tuple[int, int]]:
        return self.inner.search(blind_query(self.keys.index(q.tenant_id), q))

    def time_span(self, q: Query) -> tuple[int, int] | None:
        return self.inner.time_span(blind_query(self.keys.index(q.tenant_id), q))

    def count_by_time(self, q: Query, origin_ns: int, step_ns: int) -> list[tuple[int, str, int]]:
        return self.inner.count_by_time(blind_query(self.keys.index(q.tenant_id), q), origin_ns, step_ns)

    def expire(self, tenant_id: int, indexes: Sequence[int], texts: Mapping[int, str]) -> int:
        return self.inner.expire(tenant_id, indexes, self._token_texts(tenant_id, indexes))

    def subject_entries(self, tenant_id: int, subject: str, by_actor: bool = False) -> list[Entry]:
        # the stored subject is blinded otherwise than the search rows' actor: always a scan
        return [self.open_entry(tenant_id, e) for e in self.inner.subject_entries(tenant_id, self.blind_subject(tenant_id, subject))]

    def erase_subject(
        self, tenant_id: int, subject: str, old_texts: Mapping[int, str], rows: Sequence[ProjectedRow],
        scanned_below: int | None = None,
    ) -> list[int]:
        indexes = [k & _MASK for k in old_texts]
        old = self._token_texts(tenant_id, indexes)
        bi = self.keys.index(tenant_id)
        entries = self.entries_by_key([r.key for r in rows])
        again = [blind_row(bi, r, msgspec.structs.replace(entries[r.key], sealed=None)) for r in rows if r.key in entries]
        return self.inner.erase_subject(tenant_id, self.blind_subject(tenant_id, subject), old, again, scanned_below)

    def doc_put(self, doc: Doc) -> None:
        self.inner.doc_put(self._seal_doc(doc))

    def doc_insert(self, doc: Doc) -> bool:
        return self.inner.doc_insert(self._seal_doc(doc))

    def doc_swap(self, doc: Doc, expected: bytes) -> bool:
        # The stored data is ciphertext (a fresh nonce each write): compare the plaintext
        # here, then swap against the exact ciphertext read, so a concurrent write still loses.
        if doc.collection in PLAIN_COLLECTIONS:
            return self.inner.doc_swap(doc, expected)
        raw = self.inner.doc_get(doc.collection, doc.id)
        current = self._open_doc(raw)
        if raw is None or current is None or current.data != expected:
            return False
        return self.inner.doc_swap(self._seal_doc(doc), raw.data)

    def doc_put_many(self, docs: Sequence[Doc]) -> None:
        self.inner.doc_put_many([self._seal_doc(d) for d in docs])

    def doc_delete_many(self, collection: str, doc_ids: Sequence[str]) -> int:
        return self.inner.doc_delete_many(collection, doc_ids)

    def doc_get(self, collection: str, doc_id: str) -> Doc | None:
        return self._open_doc(self.inner.doc_get(collection, doc_id))

    def doc_list(
        self,
        collection: str,
        tenant: str | None = None,
        status: str | None = None,
        before_ns: int | None = None,
        limit: int = 100,
    ) -> list[Doc]:
        return [d for d in (self._open_doc(x) for x in self.inner.doc_list(collection, tenant, status, before_ns, limit)) if d]

    def doc_delete(self, collection: str, doc_id: str) -> bool:
        return self.inner.doc_delete(collection, doc_id)

    def doc_count(self, collection: str, tenant: str | None = None, status: str | None = None) -> int:
        return self.inner.doc_count(collection, tenant, status)

    def lease(self, name: str) -> Lease | None:
        return self.inner.lease(name)

    def compact_expired_months(self, now_ns: int | None = None) -> list[Any]:
        """PostgreSQL's compaction of expired months (rows are copied as they are, ciphertext
        included); nothing on a store without monthly partitions."""
        compact = getattr(self.inner, "compact_expired_months", None)
        return [] if compact is None else list(compact(now_ns))

    def meta(self, key: str) -> str | None:
        return self.inner.meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.inner.set_meta(key, value)

    def close(self) -> None:
        self.inner.close()


def encrypted(store: Store) -> bool:
    """Whether ``store`` was initialised encrypted (whatever it was opened with)."""
    return store.meta(META_KEY) is not None


def at_rest(
    store: Store,
    settings: EncryptionSettings | None,
    data_dir: Path | None,
    *,
    create: bool = False,
    read_only: bool = False,
) -> Store:
    """``store`` as the ledger should use it: as it is when it is not encrypted (the default),
    else an :class:`EncryptedStore` over it. ``settings.enabled`` encrypts a store that holds
    no events yet (``auditkeep init --encrypt``), creating ``<data>/master.key`` when no other
    master key is configured. A reader (``read_only``) without the master key gets the store
    as it is: verify then checks the tree and says the payloads were not checked."""
    if store.meta(META_KEY) is None:
        if settings is None or not settings.enabled or read_only:
            return store
        if any(h.size for h in store.heads()):
            raise ConfigError(
                "this store already holds unencrypted events; encryption is chosen when a store is "
                "created (auditkeep init --encrypt)"
            )
        path = key_file_path(settings, data_dir)
        if create and not settings.kms and not settings.key_env and path is not None and not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_key_file(path, new_master_key())
        kms = resolve_kms(settings, data_dir)
        store.set_meta(META_KEY, msgspec.json.encode({"algorithm": ALGORITHM}).decode())
        wrapped = EncryptedStore(store, kms, settings, data_dir)
        wrapped.keys.ensure(DOCS_TID, create=True)
        return wrapped
    settings = settings or EncryptionSettings()
    try:
        kms = resolve_kms(settings, data_dir)
    except KeyUnavailable:
        if read_only:
            return store
        raise
    wrapped = EncryptedStore(store, kms, settings, data_dir)
    wrapped.keys.ensure(DOCS_TID, create=not read_only)
    return wrapped
