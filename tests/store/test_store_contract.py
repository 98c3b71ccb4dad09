"""The Store contract, exercised directly on both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from auditkeep.ledger import LedgerConfig
from auditkeep.ledger.projector import project_entry
from auditkeep.store.base import (
    CheckpointRow,
    Doc,
    Entry,
    Head,
    Query,
    Store,
    StoreError,
    entry_key,
)

BASE_NS = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
SEALED = frozenset({"metadata.email"})


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens a store (again: as a restart, or a second node on the same database)."""
    made: list[Any] = []

    def factory() -> Store:
        if request.param == "sqlite":
            from auditkeep.store.sqlite import SQLiteStore

            store: Any = SQLiteStore(tmp_path / "data")
        else:
            import pg_support

            store = pg_support.store_for_test(request, tmp_path, LedgerConfig())
        made.append(store)
        return store  # type: ignore[no-any-return]

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


def _leaf(tenant: str, index: int, received_ns: int, **fields: Any) -> bytes:
    t = time.gmtime(received_ns // 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{received_ns % 1_000_000_000:09d}Z"
    event = {
        "actor": {"id": f"user-{index % 3}"},
        "action": "db.query",
        "id": str(uuid.UUID(bytes=_uuid(tenant, index))),
        "time": stamp,
        "received_at": stamp,
        "tenant": tenant,
        "outcome": "success",
    }
    event.update(fields)
    return msgspec.json.encode(event)


def _uuid(tenant: str, index: int) -> bytes:
    return hashlib.sha256(f"{tenant}/{index}".encode()).digest()[:16]


def _entries(tenant: str, start: int, n: int, **fields: Any) -> list[Entry]:
    return [
        Entry(
            i, _uuid(tenant, i), BASE_NS + i * 1000, _leaf(tenant, i, BASE_NS + i * 1000, **fields)
        )
        for i in range(start, start + n)
    ]


def _append(store: Store, head: Head, entries: list[Entry], cp: bool = False) -> Head:
    """Writes entries with a made-up root and one tile, as the ledger would shape them."""
    with store.append_txn([head.tenant_id]) as txn:
        cur = txn.head(head.tenant_id)
        assert cur.size == entries[0].index
        size = cur.size + len(entries)
        root = hashlib.sha256(b"root%d" % size).digest()
        new = Head(
            cur.tenant_id,
            cur.tenant,
            size,
            root,
            entries[-1].received_ns,
            cur.checkpoint_size,
            cur.checkpoint_ns,
        )
        row = None
        if cp:
            row = CheckpointRow(cur.tenant_id, size, root, f"note {size}\n", time.time_ns())
            new.checkpoint_size, new.checkpoint_ns = size, row.signed_ns
        txn.write(cur.tenant_id, entries, {(0, 0): b"\x01" * 32 * min(size, 256)}, new, row)
    return new


# tenants and the append transaction ----------------------------------------------------------


def test_tenants_are_created_once_and_listed_by_name(store: Store) -> None:
    assert store.tenant("zeta") is None
    z = store.tenant("zeta", create=True)
    a = store.tenant("alpha", create=True)
    assert z is not None and a is not None
    assert (z.size, z.checkpoint_size) == (0, 0)
    assert z.root == hashlib.sha256(b"").digest()
    again = store.tenant("zeta", create=True)
    assert again is not None and again.tenant_id == z.tenant_id
    assert [h.tenant for h in store.heads()] == ["alpha", "zeta"]


def test_write_then_read_everything_back(store: Store) -> None:
    h = store.tenant("acme", create=True)
    assert h is not None
    entries = _entries("acme", 0, 10)
    entries[3].subject, entries[3].sealed = "user-0", b'{"actor.name":"Ann"}'
    new = _append(store, h, entries, cp=True)
    head = store.tenant("acme")
    assert head == new
    got = list(store.entries(h.tenant_id, 0, 100))
    assert got == entries
    assert list(store.entries(h.tenant_id, 4, 6)) == entries[4:6]
    assert store.entry_by_id(h.tenant_id, entries[3].id) == entries[3]
    assert store.entry_by_id(h.tenant_id, b"\x00" * 16) is None
    keys = [entry_key(h.tenant_id, i) for i in (1, 7)]
    assert store.entries_by_key(keys) == {keys[0]: entries[1], keys[1]: entries[7]}
    assert store.read_tiles(h.tenant_id, [(0, 0), (0, 1)]) == {(0, 0): b"\x01" * 320}
    assert store.tiles_range(h.tenant_id, 0, 0, 5) == {0: b"\x01" * 320}
    cp = store.latest_checkpoint(h.tenant_id)
    assert cp is not None and (cp.size, cp.root, cp.note) == (10, new.root, "note 10\n")
    assert store.checkpoint_at(h.tenant_id, 10) == cp
    assert store.checkpoint_at(h.tenant_id, 9) is None
    assert list(store.checkpoints(h.tenant_id)) == [cp]
    assert store.checkpoint_from(h.tenant_id, 0) == store.checkpoint_from(h.tenant_id, 10) == cp
    assert store.checkpoint_from(h.tenant_id, 11) is None
    raw = getattr(store, "entries_raw", None)
    if raw is not None:
        chunks = list(raw(h.tenant_id, 0, 10, 4))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert [r[0] for c in chunks for r in c] == [entry_key(h.tenant_id, i) for i in range(10)]


def test_tiles_are_replaced_and_heads_are_per_tenant(store: Store) -> None:
    a = store.tenant("a", create=True)
    b = store.tenant("b", create=True)
    assert a is not None and b is not None
    a1 = _append(store, a, _entries("a", 0, 3))
    _append(store, a1, _entries("a", 3, 2))
    assert store.read_tiles(a.tenant_id, [(0, 0)]) == {(0, 0): b"\x01" * 160}
    assert store.read_tiles(b.tenant_id, [(0, 0)]) == {}
    assert list(store.entries(b.tenant_id, 0, 10)) == []
    heads = {h.tenant: h.size for h in store.heads()}
    assert heads == {"a": 5, "b": 0}


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    h = store.tenant("acme", create=True)
    assert h is not None
    with pytest.raises(RuntimeError), store.append_txn([h.tenant_id]) as txn:
        cur = txn.head(h.tenant_id)
        txn.salts(h.tenant_id, ["someone"])
        txn.write(
            h.tenant_id,
            _entries("acme", 0, 5),
            {},
            Head(cur.tenant_id, cur.tenant, 5, b"r" * 32, 1, 0, 0),
        )
        raise RuntimeError("the ledger failed half-way")
    assert store.tenant("acme") == h
    assert list(store.entries(h.tenant_id, 0, 10)) == []


def test_unknown_tenant_in_a_transaction(store: Store) -> None:
    with pytest.raises(StoreError), store.append_txn([987_654]):
        pass


def test_existing_finds_ids_of_its_tenant_only(store: Store) -> None:
    a = store.tenant("a", create=True)
    b = store.tenant("b", create=True)
    assert a is not None and b is not None
    entries = _entries("a", 0, 4)
    _append(store, a, entries)
    with store.append_txn([a.tenant_id, b.tenant_id]) as txn:
        found = txn.existing(a.tenant_id, [entries[1].id, entries[3].id, b"\x07" * 16])
        assert found == {entries[1].id: entries[1], entries[3].id: entries[3]}
        assert txn.existing(b.tenant_id, [entries[1].id]) == {}
        assert txn.existing(a.tenant_id, []) == {}


def test_salts_are_created_once_per_subject_and_tenant(store: Store) -> None:
    a = store.tenant("a", create=True)
    b = store.tenant("b", create=True)
    assert a is not None and b is not None
    with store.append_txn([a.tenant_id, b.tenant_id]) as txn:
        first = txn.salts(a.tenant_id, ["ann", "bob", "nul\x00in"])
        other = txn.salts(b.tenant_id, ["ann"])
    assert set(first) == {"ann", "bob", "nul\x00in"} and all(len(s) == 32 for s in first.values())
    assert other["ann"] != first["ann"]
    with store.append_txn([a.tenant_id]) as txn:
        again = txn.salts(a.tenant_id, ["bob", "ann", "cy", "nul\x00in"])
    assert {k: again[k] for k in first} == first
    assert len(again["cy"]) == 32


def test_checkpoint_at_a_size_is_never_replaced(store: Store) -> None:
    h = store.tenant("acme", create=True)
    assert h is not None
    new = _append(store, h, _entries("acme", 0, 2), cp=True)
    first = store.checkpoint_at(h.tenant_id, 2)
    with store.append_txn([h.tenant_id]) as txn:
        cur = txn.head(h.tenant_id)
        txn.write(h.tenant_id, [], {}, cur, CheckpointRow(h.tenant_id, 2, b"x" * 32, "other\n", 1))
    assert store.checkpoint_at(h.tenant_id, 2) == first
    assert store.tenant("acme") == new


def test_appends_to_one_tenant_wait_for_each_other(open_store: Callable[[], Store]) -> None:
    """Two stores on one database (two nodes): the second transaction on a tenant waits for
    the first and then sees its head."""
    one, two = open_store(), open_store()
    h = one.tenant("acme", create=True)
    assert h is not None
    inside = threading.Event()
    seen: list[int] = []

    def second() -> None:
        inside.wait(10)
        with two.append_txn([h.tenant_id]) as txn:
            seen.append(txn.head(h.tenant_id).size)

    t = threading.Thread(target=second)
    t.start()
    with one.append_txn([h.tenant_id]) as txn:
        cur = txn.head(h.tenant_id)
        inside.set()
        time.sleep(0.3)
        assert seen == []  # still waiting for our lock
        txn.write(
            h.tenant_id,
            _entries("acme", 0, 3),
            {},
            Head(cur.tenant_id, cur.tenant, 3, b"r" * 32, BASE_NS, 0, 0),
        )
    t.join(10)
    assert seen == [3]


# consumers, documents, settings ----------------------------------------------------------------


def test_cursors(store: Store) -> None:
    assert store.cursor("alerts", 1) == (0, None)
    store.set_cursor("alerts", 1, 10, b"state")
    store.set_cursor("alerts", 2, 3)
    assert store.cursor("alerts", 1) == (10, b"state")
    store.set_cursor("alerts", 1, 12, None)
    assert store.cursor("alerts", 1) == (12, None)
    assert store.cursor("alerts", 2) == (3, None)
    assert store.cursor("forward", 1) == (0, None)


def test_documents(store: Store) -> None:
    def doc(i: str, ns: int, tenant: str | None = "t", status: str | None = "open") -> Doc:
        return Doc("keys", i, tenant, ns, status, f"data {i}".encode())

    assert store.doc_insert(doc("a", 1))
    assert not store.doc_insert(doc("a", 9, status="other"))
    store.doc_put(doc("b", 2))
    store.doc_put(doc("c", 3, tenant="u", status="closed"))
    store.doc_put(doc("d", 3))
    store.doc_put(Doc("other", "a", None, 5, None, b""))
    assert store.doc_get("keys", "a") == doc("a", 1)
    assert store.doc_get("keys", "zz") is None
    assert [d.id for d in store.doc_list("keys")] == ["d", "c", "b", "a"]
    assert [d.id for d in store.doc_list("keys", tenant="t")] == ["d", "b", "a"]
    assert [d.id for d in store.doc_list("keys", status="closed")] == ["c"]
    assert [d.id for d in store.doc_list("keys", before_ns=3)] == ["b", "a"]
    assert [d.id for d in store.doc_list("keys", limit=1)] == ["d"]
    assert store.doc_count("keys") == 4
    assert store.doc_count("keys", tenant="t", status="open") == 3
    store.doc_put(doc("a", 7, status="closed"))
    assert store.doc_get("keys", "a") == doc("a", 7, status="closed")
    # compare-and-swap: replaced only while the data is what the caller read
    assert not store.doc_swap(Doc("keys", "a", "t", 8, "open", b"new"), b"stale data")
    assert store.doc_get("keys", "a") == doc("a", 7, status="closed")
    assert store.doc_swap(Doc("keys", "a", "t", 8, "open", b"new"), b"data a")
    assert store.doc_get("keys", "a") == Doc("keys", "a", "t", 8, "open", b"new")
    assert not store.doc_swap(Doc("keys", "a", "t", 9, "open", b"newer"), b"data a")  # lost the race
    assert not store.doc_swap(Doc("keys", "zz", "t", 9, "open", b"x"), b"data zz")  # never inserts
    assert store.doc_get("keys", "zz") is None
    assert store.doc_delete("keys", "a")
    assert not store.doc_delete("keys", "a")
    assert store.doc_count("keys") == 3
    assert store.doc_get("other", "a") == Doc("other", "a", None, 5, None, b"")


def test_meta(store: Store) -> None:
    assert store.meta("log_id") is None
    store.set_meta("log_id", "abc")
    store.set_meta("log_id", "def")
    assert store.meta("log_id") == "def"


def test_data_survives_reopening(open_store: Callable[[], Store]) -> None:
    first = open_store()
    h = first.tenant("acme", create=True)
    assert h is not None
    new = _append(first, h, _entries("acme", 0, 3), cp=True)
    first.set_meta("log_id", "x1")
    first.close()
    second = open_store()
    assert second.tenant("acme") == new
    assert second.meta("log_id") == "x1"
    assert len(list(second.entries(h.tenant_id, 0, 10))) == 3


# projection and search ------------------------------------------------------------------------


def _seeded(store: Store) -> tuple[Head, list[Entry]]:
    """60 events in tenant "acme" (like the core search tests) and one in "other"."""
    h = store.tenant("acme", create=True)
    o = store.tenant("other", create=True)
    assert h is not None and o is not None
    entries = []
    for i in range(60):
        received = BASE_NS + i * 1000
        fields: dict[str, Any] = {
            "time": f"2024-05-01T12:{i:02d}:00Z" if i != 59 else "2024-05-01T12:58:00Z",
            "actor": {"id": f"user-{i % 3}", "name": "Zoë Ünal" if i == 4 else f"Person {i % 3}"},
            "action": ["user.login", "user.logout", "db.query"][i % 3],
            "category": ["authentication", "authentication", "data_access"][i % 3],
            "resource": {"type": "table" if i % 2 else "doc", "id": f"r{i % 5}"},
            "outcome": "failure" if i % 10 == 0 else "success",
            "metadata": {
                "http": {"status": 403 if i % 4 == 0 else 200, "path": f"/p/{i}"},
                "flag": i % 2 == 0,
                "tags": ["x", "y"],
            },
        }
        if i == 30:
            fields["reason"] = "password expired at 10.0.0.1 for user.login"
        if i == 31:
            fields["actor"] = {"id": "nul\x00actor"}
        entry = Entry(i, _uuid("acme", i), received, _leaf("acme", i, received, **fields))
        if i % 6 == 1:
            entry.subject, entry.sealed = (
                f"user-{i % 3}",
                msgspec.json.encode({"metadata.email": f"p{i}@example.com"}),
            )
        entries.append(entry)
    _append(store, h, entries)
    _append(
        store,
        o,
        [Entry(0, _uuid("other", 0), BASE_NS, _leaf("other", 0, BASE_NS, action="user.login"))],
    )
    for head, es in ((h, entries), (o, list(store.entries(o.tenant_id, 0, 1)))):
        store.project(head.tenant_id, [project_entry(head.tenant_id, e) for e in es], len(es))
    return h, entries


def _find(store: Store, h: Head, **kw: Any) -> list[int]:
    q = Query(tenant_id=h.tenant_id, sealed_paths=SEALED, limit=1000, **kw)
    return [k & ((1 << 40) - 1) for _, k in store.search(q)]


def _ns(minute: int) -> int:
    return BASE_NS + minute * 60 * 1_000_000_000


def test_search_filters(store: Store) -> None:
    h, _ = _seeded(store)
    assert _find(store, h, actor="user-1") == [
        i for i in reversed(range(60)) if i % 3 == 1 and i != 31
    ]
    assert _find(store, h, actor="nul\x00actor") == [31]
    assert set(_find(store, h, action="user.*")) == {i for i in range(60) if i % 3 != 2}
    assert set(_find(store, h, action="user.login")) == {i for i in range(60) if i % 3 == 0}
    assert _find(store, h, action="user.logi*") == _find(store, h, action="user.login")
    assert _find(store, h, action="nothing.*") == []
    assert set(_find(store, h, outcome="failure")) == {0, 10, 20, 30, 40, 50}
    assert set(_find(store, h, category="data_access")) == {i for i in range(60) if i % 3 == 2}
    assert set(_find(store, h, resource_type="table", resource_id="r1")) == {
        i for i in range(60) if i % 2 and i % 5 == 1
    }
    assert _find(store, h, since_ns=_ns(10), until_ns=_ns(13)) == [12, 11, 10]
    assert _find(store, h, received_since_ns=BASE_NS + 5000, received_until_ns=BASE_NS + 8000) == [
        7,
        6,
        5,
    ]
    assert _find(store, h, actor="user-0", outcome="failure", since_ns=_ns(20)) == [30]


def test_search_metadata(store: Store) -> None:
    h, _ = _seeded(store)
    four = {i for i in range(60) if i % 4 == 0}
    assert set(_find(store, h, metadata=[("http.status", "403")])) == four
    assert set(_find(store, h, metadata=[("http.status", "403.0")])) == four
    assert set(_find(store, h, metadata=[("http.path", "/p/7")])) == {7}
    assert set(_find(store, h, metadata=[("http.status", "403"), ("http.path", "/p/8")])) == {8}
    assert set(_find(store, h, metadata=[("flag", "true")])) == {i for i in range(60) if i % 2 == 0}
    assert _find(store, h, metadata=[("tags", "x")]) == []  # an array is not its element
    assert _find(store, h, metadata=[("http", "200")]) == []
    assert _find(store, h, metadata=[("missing.path", "1")]) == []
    # a sealed personal field is matched in the plaintext kept beside the leaf
    assert _find(store, h, metadata=[("email", "p7@example.com")]) == [7]
    assert _find(store, h, metadata=[("email", "p8@example.com")]) == []


def test_search_full_text(store: Store) -> None:
    h, _ = _seeded(store)
    assert _find(store, h, text="password expired") == [30]
    assert _find(store, h, text="EXPIRED passWORD") == [30]  # every word, any order, any case
    assert _find(store, h, text="passw*") == [30]
    assert _find(store, h, text="10.0.0.1") == [30]  # a phrase of its tokens
    assert _find(store, h, text="0.0") == [30]
    assert _find(store, h, text="0.1.0") == []
    assert _find(store, h, text="10.0.0* expi*") == [30]
    assert len(_find(store, h, text="user.lo*")) == 40  # the action is searchable text too
    assert _find(store, h, text="zoe unal") == [4]  # diacritics folded
    assert _find(store, h, text="Zoë") == [4]
    assert _find(store, h, text="password missing") == []
    assert _find(store, h, text="---") == []  # a word without any token matches nothing
    assert _find(store, h, text="   ") == []
    assert len(_find(store, h, text="person")) == 58


def test_search_order_and_pagination(store: Store) -> None:
    h, _ = _seeded(store)
    seen: list[int] = []
    after = None
    while True:
        q = Query(tenant_id=h.tenant_id, newest_first=False, after=after, limit=7)
        hits = store.search(q)
        seen += [k & ((1 << 40) - 1) for _, k in hits]
        if len(hits) < 7:
            break
        after = hits[-1]
    assert seen == list(range(60))  # 58 and 59 share a time: the key breaks the tie
    newest = store.search(Query(tenant_id=h.tenant_id, limit=3))
    assert [k & ((1 << 40) - 1) for _, k in newest] == [59, 58, 57]
    after2 = store.search(Query(tenant_id=h.tenant_id, limit=2, after=newest[1]))
    assert [k & ((1 << 40) - 1) for _, k in after2] == [57, 56]
    o = store.tenant("other")
    assert o is not None
    assert len(store.search(Query(tenant_id=o.tenant_id))) == 1


def test_projection_is_idempotent_and_moves_forward(open_store: Callable[[], Store]) -> None:
    one, two = open_store(), open_store()
    h = one.tenant("acme", create=True)
    assert h is not None
    entries = _entries("acme", 0, 40)
    _append(one, h, entries)
    rows = [project_entry(h.tenant_id, e) for e in entries]
    assert one.projection_position(h.tenant_id) == 0
    one.project(h.tenant_id, rows[:20], 20)
    two.project(h.tenant_id, rows[10:30], 30)  # overlaps what is there: the overlap is skipped
    one.project(h.tenant_id, rows[:20], 20)  # behind the position: nothing, position stays
    assert two.projection_position(h.tenant_id) == 30

    def project_rest(store: Store) -> None:
        store.project(h.tenant_id, rows[25:], 40)

    threads = [threading.Thread(target=project_rest, args=(s,)) for s in (one, two, one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert one.projection_position(h.tenant_id) == 40
    hits = one.search(Query(tenant_id=h.tenant_id, limit=1000))
    assert sorted(k & ((1 << 40) - 1) for _, k in hits) == list(range(40))
    one.reset_projection()
    assert one.projection_position(h.tenant_id) == 0
    assert one.search(Query(tenant_id=h.tenant_id)) == []
    one.project(h.tenant_id, rows, 40)
    assert len(one.search(Query(tenant_id=h.tenant_id, limit=1000))) == 40


def test_lease_has_one_holder_until_released(open_store: Callable[[], Store]) -> None:
    a, b = open_store(), open_store()
    first = a.lease("alerts-runner")
    assert first is not None
    assert b.lease("alerts-runner") is None  # another holder (connection / open file) is refused
    assert a.lease("alerts-runner") is None  # even from the same store object
    other = b.lease("something-else")
    assert other is not None
    first.release()
    second = b.lease("alerts-runner")
    assert second is not None
    second.release()
    other.release()


def test_documents_in_batches(store: Store) -> None:
    docs = [Doc("held", f"d{i}", "t", 10 + i, None, bytes([i])) for i in range(5)]
    store.doc_put_many(docs)
    store.doc_put_many([Doc("held", "d0", "t", 99, "x", b"new")])
    assert store.doc_get("held", "d0") == Doc("held", "d0", "t", 99, "x", b"new")
    assert store.doc_count("held") == 5
    assert store.doc_delete_many("held", ["d1", "d2", "nope"]) == 2
    assert sorted(d.id for d in store.doc_list("held")) == ["d0", "d3", "d4"]
    store.doc_put_many([])
    assert store.doc_delete_many("held", []) == 0


def test_checkpoints_newest_pages_by_size(store: Store) -> None:
    h = store.tenant("acme", create=True)
    assert h is not None
    for i in range(5):  # checkpoints at sizes 2, 4, 6, 8, 10
        h = _append(store, h, _entries("acme", 2 * i, 2), cp=True)
    everything = list(store.checkpoints(h.tenant_id))
    assert [c.size for c in everything] == [2, 4, 6, 8, 10]
    assert store.checkpoints_newest(h.tenant_id, None, 2) == everything[::-1][:2]
    assert [c.size for c in store.checkpoints_newest(h.tenant_id, 8, 2)] == [6, 4]
    assert [c.size for c in store.checkpoints_newest(h.tenant_id, 4, 10)] == [2]
    assert store.checkpoints_newest(h.tenant_id, 2, 10) == []
