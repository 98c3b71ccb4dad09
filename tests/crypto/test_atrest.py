"""Encryption at rest on both stores: no event plaintext in any file of the data directory
or in a pg_dump of the schema, searches still answer, proofs stay as they were."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditkeep.crypto.atrest import (
    EncryptionSettings,
    KeyUnavailable,
    LocalKms,
    encode_master,
    is_sealed,
    new_master_key,
    write_key_file,
)
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.atrest import EncryptedSearchError, EncryptedStore, at_rest
from auditkeep.retention.erase import erase_subject
from auditkeep.store.base import Doc
from server_harness import clean_env

ON = EncryptionSettings(enabled=True)
# One marker per place an event carries text: actor, action, resource, metadata, message.
MARKERS = {
    "actor": "QxActorMark71",
    "name": "QxNameMark72",
    "action": "qxactionmark73",
    "rtype": "QxTypeMark74",
    "rid": "QxResMark75",
    "meta": "QxMetaMark76",
    "metakey": "qxmetakeymark77",
    "email": "qxmailmark78@example.org",
    "reason": "QxReasonMark79",
    "doc": "QxDocMark80",
}


def _events(n: int) -> list[dict[str, Any]]:
    m = MARKERS
    return [
        {
            "actor": {"id": m["actor"] if i % 2 == 0 else f"other-{i}", "name": m["name"], "ip": "10.0.0.9"},
            "action": f"user.{m['action']}.login",
            "category": "authentication",
            "resource": {"type": m["rtype"], "id": m["rid"] if i % 2 == 0 else f"r{i}"},
            "metadata": {m["metakey"]: m["meta"], "status": 200 + i % 2, "email": m["email"]},
            "reason": f"{m['reason']} because of server.example.net",
            "outcome": "success" if i % 2 == 0 else "failure",
        }
        for i in range(n)
    ]


def _raw_hits(directory: Path) -> dict[str, list[str]]:
    """Markers found in any file of ``directory`` (raw bytes, UTF-8 and hex)."""
    hits: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            blob = path.read_bytes()
            found = [m for m in MARKERS.values() if m.encode() in blob or m.encode().hex().encode() in blob]
            if found:
                hits[path.name] = found
    return hits


def _pg_dump(store: Any) -> bytes:
    import pg_support

    schema = store.inner.schema if hasattr(store.inner, "schema") else None
    assert schema, "the PostgreSQL store names its schema"
    return subprocess.run(
        ["pg_dump", "--no-owner", "--schema", schema, pg_support.base_url()],
        check=True, capture_output=True, timeout=120,
    ).stdout


def test_no_plaintext_in_any_file_or_dump(open_encrypted: Callable[..., Ledger], tmp_path: Path, store_kind: str) -> None:
    lg = open_encrypted()
    assert isinstance(lg.store, EncryptedStore)
    lg.append(_events(40))
    lg.append(_events(3), tenant="second")
    lg.store.doc_put(Doc("quarantine", "q1", "default", 1, "new", MARKERS["doc"].encode()))
    lg.store.set_cursor("test-consumer", 1, 5, MARKERS["doc"].encode())
    # the quarantine: a malformed record and an event the ledger refuses, both with markers
    import msgspec

    from auditkeep.model import Event
    from auditkeep.sources.base import SourceError
    from auditkeep.sources.intake import Intake
    from auditkeep.sources.quarantine import Quarantine

    refused = msgspec.convert(
        {"actor": {"id": MARKERS["actor"]}, "action": "k8s.pods.list", "reason": MARKERS["reason"] + "x" * 9000}, Event
    )
    got = Intake(lg, Quarantine(lg.store)).deliver(
        "kubernetes", "k", [refused], [SourceError("kubernetes", "malformed JSON", b'{"user": "' + MARKERS["doc"].encode())]
    )
    assert len(got.quarantined) == 2
    kept = [Quarantine(lg.store).get(r.id) for r in got.quarantined]
    assert any(k is not None and MARKERS["doc"].encode() in k.raw for k in kept)  # readers see the bytes
    assert len(lg.search(actor=MARKERS["actor"], limit=100).items) == 20  # the projection is filled
    assert lg.verify().ok
    # what readers see is the plaintext
    assert lg.store.doc_get("quarantine", "q1").data == MARKERS["doc"].encode()  # type: ignore[union-attr]
    assert lg.store.cursor("test-consumer", 1) == (5, MARKERS["doc"].encode())
    first = lg.record_at(0)
    assert first.event.actor.name == MARKERS["name"] and first.event.reason is not None
    # the raw rows are ciphertext
    raw = next(lg.store.inner.entries(1, 0, 1))
    assert is_sealed(raw.leaf) and is_sealed(raw.sealed) and raw.subject and raw.subject.startswith("~")

    data = tmp_path / "data"
    if store_kind == "sqlite":
        names = {p.name for p in data.iterdir()}
        assert "log.db-wal" in names  # open: the WAL is there and searched too
        assert _raw_hits(data) == {}
    else:
        dump = _pg_dump(lg.store)
        assert b"COPY" in dump and len(dump) > 10_000
        found = [m for m in MARKERS.values() if m.encode() in dump or m.encode().hex().encode() in dump]
        assert found == []
        assert _raw_hits(data) == {}
    lg.close()
    assert _raw_hits(data) == {}


def test_searches_on_blind_tokens(open_encrypted: Callable[..., Ledger]) -> None:
    lg = open_encrypted()
    lg.append(_events(10))
    m = MARKERS

    def count(**kw: Any) -> int:
        return len(lg.search(limit=100, **kw).items)

    assert count(actor=m["actor"]) == 5
    assert count(actor=m["actor"].lower()) == 0  # exact, as on a plain store
    assert count(action=f"user.{m['action']}.login") == 10
    assert count(action="user.*") == 10 and count(action=f"user.{m['action']}.*") == 10
    assert count(action="group.*") == 0
    assert count(resource_type=m["rtype"], resource_id=m["rid"]) == 5
    assert count(outcome="failure") == 5 and count(category="authentication") == 10
    assert count(text=m["reason"]) == 10 and count(text=m["reason"].lower()) == 10  # case-folded words
    assert count(text="server.example.net") == 10  # a dotted word is a phrase of its tokens
    assert count(text="example.server") == 0
    assert count(text=m["name"]) == 10  # personal plaintext is searchable (until erased)
    assert count(metadata={m["metakey"]: m["meta"]}) == 10
    assert count(metadata={"status": "201"}) == 5
    assert count(metadata={"email": m["email"]}) == 10  # a sealed metadata path
    assert count(submitter="embedded") == 10 and count(submitter="cli") == 0
    assert count(text=m["reason"][:6]) == 0  # no substring matches on encrypted text
    with pytest.raises(EncryptedSearchError, match="prefix"):
        lg.search(text=m["reason"][:6] + "*")
    with pytest.raises(EncryptedSearchError, match="dot"):
        lg.search(action="us*")


def test_retention_compacts_an_encrypted_month(open_encrypted: Callable[..., Ledger], store_kind: str) -> None:
    from auditkeep.retention import load_policies, run_retention
    from auditkeep.store.postgres_schema import Month

    lg = open_encrypted()
    lg.append(_events(10))
    month = Month.of(lg.head("default").received_ns)
    later = month.end_ns + 2 * 86_400 * 1_000_000_000
    run_retention(lg, load_policies([{"name": "all", "delete_after": "1d"}]), later, "default")
    store: Any = lg.store
    assert store.compact_expired_months(later) == []  # the run compacted it already, or nothing to compact
    if store_kind == "postgres":
        with store.inner._conn() as conn:
            note = conn.execute(
                "SELECT obj_description(to_regclass(%s), 'pg_class')", (month.table,)).fetchone()[0]
        from auditkeep.store.postgres_lifecycle import COMPACTED_NOTE

        assert note == COMPACTED_NOTE
    rep = lg.verify()
    assert rep.ok and rep.tenants[0].expired == 10, rep


def test_erasure_on_an_encrypted_store(open_encrypted: Callable[..., Ledger], tmp_path: Path, store_kind: str) -> None:
    lg = open_encrypted()
    lg.append(_events(6))
    assert len(lg.search(text=MARKERS["name"]).items) == 6
    done = erase_subject(lg, "default", MARKERS["actor"], "test", {"id": "admin", "type": "user"})
    assert done.events == 3
    assert len(lg.search(text=MARKERS["name"]).items) == 3  # the other subjects' events keep it
    assert len(lg.search(actor=MARKERS["actor"]).items) == 3
    rep = lg.verify()
    assert rep.ok, rep


def test_leaf_hashes_are_over_the_plaintext_leaf(tmp_path: Path) -> None:
    import hashlib

    with Ledger.open(tmp_path / "d", encryption=ON, background=False) as lg:
        receipts = lg.append(_events(5))
        assert isinstance(lg.store, EncryptedStore)
        for r in receipts:
            raw = next(lg.store.inner.entries(1, r.index, r.index + 1))
            plain = next(lg.store.entries(1, r.index, r.index + 1))
            assert is_sealed(raw.leaf) and plain.leaf.startswith(b"{")
            assert hashlib.sha256(b"\x00" + plain.leaf).hexdigest() == r.leaf_hash
        proof = lg.prove_inclusion(receipts[2].index)
        assert proof is not None
        assert lg.verify().ok


def test_master_key_sources(tmp_path: Path) -> None:
    key = new_master_key()
    good = tmp_path / "k.key"
    write_key_file(good, key)
    assert os.stat(good).st_mode & 0o777 == 0o600
    lg = Ledger.open(tmp_path / "d", encryption=EncryptionSettings(enabled=True, key_file=str(good)))
    lg.append(_events(2))
    lg.close()
    # the same key from the environment opens it
    env_name = "AUDITKEEP_TEST_MASTER_KEY"
    os.environ[env_name] = encode_master(key)
    try:
        with Ledger.open(tmp_path / "d", encryption=EncryptionSettings(key_env=env_name)) as lg:
            assert len(lg.search(actor=MARKERS["actor"]).items) == 1
    finally:
        del os.environ[env_name]
    # a key file others may read is refused
    loose = tmp_path / "loose.key"
    loose.write_text(encode_master(key))
    loose.chmod(0o644)
    with pytest.raises(KeyUnavailable, match="chmod 600"):
        Ledger.open(tmp_path / "d", encryption=EncryptionSettings(key_file=str(loose)))
    # another master key is named as such
    other = tmp_path / "other.key"
    write_key_file(other, new_master_key())
    with pytest.raises(KeyUnavailable, match=LocalKms(key).key_id):
        Ledger.open(tmp_path / "d", encryption=EncryptionSettings(key_file=str(other)))
    # an encrypted store never silently takes plaintext: without settings its default key file is looked for
    with pytest.raises(KeyUnavailable, match=r"master\.key"):
        Ledger.open(tmp_path / "d")


def test_an_existing_plain_store_is_not_switched(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "p", background=False) as lg:
        lg.append(_events(1))
    with pytest.raises(Exception, match="unencrypted events"):
        Ledger.open(tmp_path / "p", encryption=ON)


def test_the_marker_check_finds_plaintext_in_a_plain_store(
    make_ledger: Callable[..., Ledger], tmp_path: Path, store_kind: str
) -> None:
    """The control of the checks above: the same search finds the markers without encryption."""
    lg = make_ledger()
    lg.append(_events(4))
    lg.search(actor=MARKERS["actor"])
    if store_kind == "sqlite":
        assert set(_raw_hits(tmp_path / "data").get("log.db-wal", [])) >= {MARKERS["actor"], MARKERS["reason"]}
    else:
        import pg_support

        schema = lg.store.schema  # type: ignore[attr-defined]
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--schema", schema, pg_support.base_url()],
            check=True, capture_output=True, timeout=120,
        ).stdout
        assert MARKERS["reason"].encode().hex().encode() in dump and MARKERS["actor"].encode() in dump


def _generations(store: EncryptedStore, tid: int = 1) -> set[int]:
    gens: set[int] = set()
    for e in store.inner.entries(tid, 0, store.inner.heads()[0].size):
        gens.add(int.from_bytes(e.leaf[4:8], "big"))
        if e.sealed is not None:
            gens.add(int.from_bytes(e.sealed[4:8], "big"))
    return gens


def test_rotate_rewraps_without_rewriting(open_encrypted: Callable[..., Ledger], tmp_path: Path) -> None:
    from auditkeep.ledger.atrest_rotate import rotate

    lg = open_encrypted()
    lg.append(_events(6))
    store = lg.store
    assert isinstance(store, EncryptedStore)
    before = [e.leaf for e in store.inner.entries(1, 0, 6)]
    new_key = new_master_key()
    n = rotate(store, LocalKms(new_key))
    assert n >= 3  # documents' keys and the tenant's index and data keys
    assert [e.leaf for e in store.inner.entries(1, 0, 6)] == before  # no event rewritten
    lg.close()
    # the old master key no longer opens the store; the new one does
    new_file = tmp_path / "new.key"
    write_key_file(new_file, new_key)
    with pytest.raises(KeyUnavailable, match="wrapped under master key"):
        open_encrypted(EncryptionSettings())
    lg2 = open_encrypted(EncryptionSettings(key_file=str(new_file)))
    assert len(lg2.search(actor=MARKERS["actor"]).items) == 3
    assert lg2.verify().ok


def test_reencrypt_resumes_after_kill_9(open_encrypted: Callable[..., Ledger], tmp_path: Path, store_kind: str) -> None:
    import sys

    from auditkeep.ledger.atrest_rotate import CURSOR, reencrypt_tenant

    lg = open_encrypted()
    for _ in range(4):
        lg.append(_events(100))
    store = lg.store
    assert isinstance(store, EncryptedStore)
    assert _generations(store) == {1}
    if store_kind == "sqlite":
        location = str(tmp_path / "data")
    else:
        import pg_support

        location = pg_support.url_for_schema(store.inner.schema)  # type: ignore[attr-defined]
    child = Path(__file__).with_name("reencrypt_child.py")
    proc = subprocess.run(
        [sys.executable, str(child), location, str(tmp_path / "data"), "3"], capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert _generations(store) == {1, 2}  # killed half way: both generations are in use
    pos, state = store.cursor(CURSOR, 1)
    assert 0 < pos < 400 and state is not None
    done = reencrypt_tenant(store, 1, "default")
    assert done.generation == 2 and done.dropped == [1]
    assert 0 < done.rewritten < 400 + 1  # only what the killed run had not rewritten (and its last chunk)
    assert _generations(store) == {2}
    assert store.keys.generations(1) == [2]
    assert store.cursor(CURSOR, 1) == (0, None)
    lg.close()
    lg2 = open_encrypted()  # a fresh process's view: only generation 2 is left, and it opens everything
    assert len(lg2.search(actor=MARKERS["actor"], limit=500).items) == 200
    assert lg2.record_at(399).event.actor.name == MARKERS["name"]
    rep = lg2.verify()
    assert rep.ok, rep


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args, "--data", str(data)],
        capture_output=True, text=True, timeout=120, env=clean_env(COLUMNS="200"), cwd=str(data.parent),
    )


def test_cli_init_encrypt_and_verify_with_and_without_the_key(tmp_path: Path) -> None:
    import json

    data = tmp_path / "data"
    r = _cli(data, "init", "--encrypt")
    assert r.returncode == 0, r.stderr
    assert "aes-256-gcm" in r.stdout and os.stat(data / "master.key").st_mode & 0o777 == 0o600
    events = tmp_path / "ev.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in _events(20)) + "\n")
    assert _cli(data, "ingest", str(events)).returncode == 0
    r = _cli(data, "search", "--actor", MARKERS["actor"], "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(MARKERS["actor"]) >= 10
    r = _cli(data, "verify", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)["tenants"][0]
    assert rep["payloads_unchecked"] == 0 and rep["personal_fields_checked"] > 0
    # without the master key: the tree is verified, the payloads are said not to be
    (data / "master.key").rename(tmp_path / "kept.key")
    r = _cli(data, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "20 payloads are encrypted and were NOT checked" in r.stdout and "tree only" in r.stdout
    r = _cli(data, "verify", "--json")
    rep = json.loads(r.stdout)["tenants"][0]
    assert rep["payloads_unchecked"] == 20 and rep["entries_checked"] == 20
    # reading events needs the key: said so, not a decoding error
    r = _cli(data, "search", "--actor", MARKERS["actor"])
    assert r.returncode == 2 and "encrypted at rest and its master key was not given" in r.stderr, r.stderr
    # a writer refuses to run without it
    r = _cli(data, "ingest", str(events))
    assert r.returncode == 2 and "master key file" in r.stderr
    # with the key back, a payload altered in the file is caught
    (tmp_path / "kept.key").rename(data / "master.key")
    import sqlite3

    conn = sqlite3.connect(data / "log.db")
    leaf = conn.execute("SELECT leaf FROM entries WHERE k = (1 << 40) | 7").fetchone()[0]
    conn.execute("UPDATE entries SET leaf = ? WHERE k = (1 << 40) | 7", (leaf[:-1] + bytes([leaf[-1] ^ 1]),))
    conn.commit()
    conn.close()
    r = _cli(data, "verify")
    assert r.returncode == 1 and "entry 7" in r.stdout + r.stderr


def test_documents_round_trip_sealed(open_encrypted: Callable[..., Ledger]) -> None:
    lg = open_encrypted()
    store = lg.store
    assert isinstance(store, EncryptedStore)
    store.doc_put(Doc("users", "u1", None, 1, None, b"v1"))
    assert is_sealed(store.inner.doc_get("users", "u1").data)  # type: ignore[union-attr]
    assert store.doc_swap(Doc("users", "u1", None, 1, None, b"v2"), b"v1")
    assert not store.doc_swap(Doc("users", "u1", None, 1, None, b"v3"), b"v1")  # v1 is gone: the swap loses
    assert store.doc_get("users", "u1").data == b"v2"  # type: ignore[union-attr]
    assert [d.data for d in store.doc_list("users")] == [b"v2"]
    assert store.doc_insert(Doc("users", "u2", None, 2, None, b"w")) and not store.doc_insert(
        Doc("users", "u2", None, 2, None, b"x")
    )


def test_a_kms_plugin_wraps_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``encryption.kms = "module:factory"``: the plugin (here a small module written by the
    test, holding its key in a file of its own) wraps and unwraps; the store never sees it."""
    key = new_master_key()
    (tmp_path / "kms_key").write_bytes(key)
    (tmp_path / "test_kms_plugin.py").write_text(
        "from pathlib import Path\n"
        "from auditkeep.crypto.atrest import LocalKms\n"
        "calls = []\n"
        "class Plugin:\n"
        "    def __init__(self, options):\n"
        "        self._inner = LocalKms(Path(options['key_path']).read_bytes())\n"
        "        self.key_id = 'plugin-' + self._inner.key_id\n"
        "    def wrap(self, key, context):\n"
        "        calls.append('wrap')\n"
        "        return self._inner.wrap(key, context)\n"
        "    def unwrap(self, wrapped, context):\n"
        "        calls.append('unwrap')\n"
        "        return self._inner.unwrap(wrapped, context)\n"
        "def factory(options):\n"
        "    return Plugin(options)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = EncryptionSettings(enabled=True, kms="test_kms_plugin:factory",
                                  kms_options={"key_path": str(tmp_path / "kms_key")})
    with Ledger.open(tmp_path / "d", encryption=settings, background=False) as lg:
        lg.append(_events(2))
    import test_kms_plugin  # type: ignore[import-not-found]

    assert "wrap" in test_kms_plugin.calls
    assert not (tmp_path / "d" / "master.key").exists()  # no key file made when a KMS is named
    with Ledger.open(tmp_path / "d", encryption=settings, background=False) as lg:
        assert len(lg.search(actor=MARKERS["actor"]).items) == 1
    assert "unwrap" in test_kms_plugin.calls
    with pytest.raises(KeyUnavailable, match="did not return a KMS"):
        Ledger.open(tmp_path / "d", encryption=EncryptionSettings(kms="builtins:dict"))
    with pytest.raises(KeyUnavailable, match="failed: TypeError"):
        Ledger.open(tmp_path / "d", encryption=EncryptionSettings(kms="os:getcwd"))


def test_an_encrypted_store_copied_to_postgres_stays_encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """``auditkeep db copy`` copies rows as stored: the PostgreSQL copy holds the same
    ciphertext and wrapped keys, and opens with the same master key."""
    import pg_support
    from auditkeep.store.postgres_copy import copy_to_postgres
    from auditkeep.store.sqlite import SQLiteStore

    data = tmp_path / "data"
    with Ledger.open(data, encryption=ON, background=False) as lg:
        lg.append(_events(30))
    src = SQLiteStore(data)
    dst = pg_support.store_for_test(request, tmp_path, LedgerConfig())
    try:
        rep = copy_to_postgres(src, dst)
        assert rep.copied == ["default"] and not rep.mismatches
    finally:
        src.close()
    store = at_rest(dst, None, data)  # the default master key file of the data directory
    assert isinstance(store, EncryptedStore)
    from auditkeep.ledger.reader import LogReader

    reader = LogReader(store, LedgerConfig())
    try:
        assert len(reader.search(actor=MARKERS["actor"], limit=100).items) == 15
        assert reader.verify().ok
        assert is_sealed(next(dst.entries(1, 0, 1)).leaf)
    finally:
        store.close()


def test_a_running_writer_switches_to_the_new_data_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-encryption beside a ledger that keeps appending (another store object on the same
    data directory, as another process would be): the writer notices the new generation at
    its next append, so nothing is left under the key re-encryption deletes."""
    from auditkeep.ledger import atrest_rotate
    from auditkeep.store.sqlite import SQLiteStore

    monkeypatch.setattr(atrest_rotate, "CHUNK", 20)
    data = tmp_path / "data"
    lg = Ledger.open(data, encryption=ON, background=False)
    try:
        lg.append(_events(50))
        other = at_rest(SQLiteStore(data), None, data)
        assert isinstance(other, EncryptedStore)
        try:
            part = atrest_rotate.reencrypt_tenant(other, 1, "default", stop_after=1)
            assert part.generation == 2
            lg.append(_events(30))  # the writer's next transaction
            assert isinstance(lg.store, EncryptedStore)
            fresh = list(lg.store.inner.entries(1, 50, 80))
            assert {int.from_bytes(e.leaf[4:8], "big") for e in fresh} == {2}
            done = atrest_rotate.reencrypt_tenant(other, 1, "default")
            assert done.dropped == [1]
        finally:
            other.close()
        assert _generations(lg.store) == {2}
        lg.append(_events(5))
        assert len(lg.search(actor=MARKERS["actor"], limit=100).items) == 25 + 15 + 3
        assert lg.verify().ok
    finally:
        lg.close()


def test_a_plain_store_cannot_be_made_to_skip_payload_checks(tmp_path: Path) -> None:
    """A row rewritten to look encrypted, in a store that is not, is tampering for verify."""
    import sqlite3

    data = tmp_path / "plain"
    with Ledger.open(data, background=False) as lg:
        lg.append(_events(5))
    conn = sqlite3.connect(data / "log.db")
    conn.execute("UPDATE entries SET leaf = ? WHERE k = (1 << 40) | 2", (b"\xa5AK1" + b"\x00" * 40,))
    conn.commit()
    conn.close()
    with Ledger.open(data, background=False) as lg:
        rep = lg.verify()
    assert not rep.ok
    assert any("carry the encrypted-payload prefix" in p.message for t in rep.tenants for p in t.problems)


def test_a_read_only_reader_of_an_encrypted_directory(tmp_path: Path) -> None:
    from auditkeep.ledger.reader import LogReader

    data = tmp_path / "data"
    with Ledger.open(data, encryption=ON) as lg:
        receipts = lg.append(_events(8))
        lg.search(limit=1)
    with LogReader.open(data) as rd:  # the master key file of the directory
        assert isinstance(rd.store, EncryptedStore) and rd.store.read_only
        assert rd.get(receipts[3].id).event.reason is not None
        assert len(rd.search(actor=MARKERS["actor"]).items) == 4
        assert rd.verify().tenants[0].payloads_unchecked == 0
    (data / "master.key").rename(tmp_path / "kept.key")
    with LogReader.open(data) as rd:  # without it: the tree only
        rep = rd.verify()
        assert rep.ok and rep.tenants[0].payloads_unchecked == 8
        with pytest.raises(KeyUnavailable, match="master key was not given"):
            rd.get(receipts[3].id)
        with pytest.raises(KeyUnavailable, match="master key was not given"):
            rd.search(actor=MARKERS["actor"])
