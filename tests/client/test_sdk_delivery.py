"""The SDK against the real server (a subprocess on 127.0.0.1): delivery, reads, proofs,
poison events, a wrong key, the async client, and the shared AuditLog interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sdk_server import AuditServer

import auditkeep
from auditkeep.client import (
    AsyncClient,
    AuditLog,
    AuthError,
    Client,
    Undelivered,
    context,
    event_id,
)
from auditkeep.ledger import NotFound
from auditkeep.log.checkpoint import CheckpointError
from auditkeep.log.proofs import ProofError
from auditkeep.model import ValidationError


class Running:
    def __init__(self, server: AuditServer, key: str, vkey: str) -> None:
        self.server = server
        self.url = server.url
        self.key = key
        self.vkey = vkey


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    server = AuditServer(tmp_path_factory.mktemp("server") / "data")
    key = server.create_key("t", "ingest,read")
    server.start()
    try:
        with Client(server.url, key) as c:
            vkey = c.pubkey()
        yield Running(server, key, vkey)
    finally:
        server.stop()


def ids_in_log(client: Client, action: str) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = client.search(action=action, order="oldest", limit=1000, cursor=cursor)
        out.extend(r.event.id or "" for r in page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_events_arrive_with_context_and_prove(running: Running) -> None:
    with Client(running.url, running.key, verify_key=running.vkey, batch_size=50) as client:
        with context(actor={"id": "alice", "ip": "10.1.2.3"}, request_id="req-1"):
            ids = [client.record(action="sdk.roundtrip", resource={"type": "doc", "id": str(i)}) for i in range(120)]
        assert client.flush(timeout=10)
        st = client.stats()
        assert st.delivered == 120 and st.queued == 0 and not st.failing
        assert sorted(ids_in_log(client, "sdk.roundtrip")) == sorted(ids)

        rec = client.get(ids[7])
        assert rec.tenant == "t" and rec.event.actor.id == "alice" and rec.event.actor.ip == "10.1.2.3"
        assert rec.event.source is not None and rec.event.source.request_id == "req-1"
        assert rec.event.resource is not None and rec.event.resource.id == "7"

        proof = client.prove_inclusion(event_id=ids[7])  # verified offline with the vkey
        assert proof.index == rec.index
        assert client.prove_inclusion(rec.index).leaf_hash == proof.leaf_hash
        cp = client.verify_checkpoint(client.checkpoint(), "t")
        assert cp.size >= rec.index + 1
        at = client.prove_inclusion(event_id=ids[7], size=cp.size)  # against a chosen checkpoint
        assert at.tree_size == cp.size and at.leaf_hash == proof.leaf_hash
        with pytest.raises(CheckpointError):
            client.verify_checkpoint(client.checkpoint(), "another-tenant")


def test_a_tampered_proof_is_refused(running: Running) -> None:
    from auditkeep.client.reads import check_proof, parse_vkey

    with Client(running.url, running.key) as client:
        eid = client.record(actor={"id": "a"}, action="sdk.tamper")
        assert client.flush(timeout=10)
        proof = client.prove_inclusion(event_id=eid)
    check_proof(proof, parse_vkey(running.vkey))
    bad = msgspec.structs.replace(proof, leaf_hash="00" * 32)
    with pytest.raises(ProofError):
        check_proof(bad, parse_vkey(running.vkey))


def test_record_many_and_read_errors(running: Running) -> None:
    with Client(running.url, running.key, tenant="t") as client:
        with pytest.raises(ValidationError) as info:
            client.record_many([{"actor": {"id": "a"}, "action": "ok.one"}, {"action": "no.actor"}])
        assert info.value.position == 1
        ids = client.record_many([{"actor": {"id": "a"}, "action": "sdk.many"}] * 3)
        assert client.flush(timeout=10)
        assert sorted(ids_in_log(client, "sdk.many")) == sorted(ids)
        with pytest.raises(NotFound):
            client.get("0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e")
        with pytest.raises(ValidationError):
            client.search(limit=0)
        with pytest.raises(AuthError):
            client.search("someone-else")


def test_poison_event_is_isolated_and_the_rest_delivered(running: Running) -> None:
    refused: list[Undelivered] = []
    with Client(running.url, running.key, on_reject=refused.append, flush_interval=60) as client:
        first = client.record(actor={"id": "a"}, action="sdk.poison", reason="original")
        assert client.flush(timeout=10)
        # Same id, different content: valid locally, refused by the server (409).
        ids = client.record_many([
            {"actor": {"id": "a"}, "action": "sdk.poison", "reason": "before"},
            {"actor": {"id": "a"}, "action": "sdk.poison", "reason": "changed", "id": first},
            {"actor": {"id": "a"}, "action": "sdk.poison", "reason": "after"},
        ])  # fmt: skip
        assert client.flush(timeout=10)
        assert [(u.id, u.reason, u.status) for u in refused] == [(first, "rejected", 409)]
        assert client.stats().rejected == 1
        assert sorted(ids_in_log(client, "sdk.poison")) == sorted([first, ids[0], ids[2]])
        assert client.get(first).event.reason == "original"


def test_a_wrong_key_keeps_events_until_a_good_one_comes(running: Running, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    bad = Client(running.url, "ak_nosuchkey_" + "x" * 43, spool_dir=spool, flush_interval=0.02)
    try:
        ids = [bad.record(actor={"id": "a"}, action="sdk.badkey") for _ in range(5)]
        assert bad.flush(timeout=1) is False
        st = bad.stats()
        assert st.failing and "401" in st.last_error and st.spooled == 5
    finally:
        bad.close(timeout=0)
    with Client(running.url, running.key, spool_dir=spool) as good:  # drains the spool first
        assert good.flush(timeout=10)
        assert sorted(ids_in_log(good, "sdk.badkey")) == sorted(ids)


def test_async_client(running: Running) -> None:
    async def main() -> None:
        async with AsyncClient(running.url, running.key, verify_key=running.vkey) as client:
            with context(actor="async-user"):
                ids = await asyncio.gather(*(client.record(action="sdk.async") for _ in range(20)))
            more = await client.record_many([{"actor": {"id": "b"}, "action": "sdk.async"}])
            assert await client.flush(timeout=10)
            page = await client.search(action="sdk.async", limit=100)
            assert sorted(r.event.id or "" for r in page.items) == sorted([*ids, *more])
            rec = await client.get(ids[0])
            assert rec.event.actor.id == "async-user"
            proof = await client.prove_inclusion(event_id=ids[0])
            assert proof.index == rec.index
            assert (await client.prove_inclusion(rec.index)).leaf_hash == proof.leaf_hash
            cp = await client.verify_checkpoint(await client.checkpoint(), "t")
            assert cp.size > rec.index

    asyncio.run(main())


def audit_some(log: AuditLog, tenant: str) -> str:
    """Application code written once against the shared interface."""
    got = log.record(tenant, actor={"id": "zoe"}, action="sdk.shared", outcome="success")
    log.record_many([{"actor": {"id": "zoe"}, "action": "sdk.shared"}], tenant)
    return event_id(got)


def test_embedded_and_remote_share_one_interface(running: Running, tmp_path: Path) -> None:
    embedded = auditkeep.open(tmp_path / "embedded")
    remote = auditkeep.Client(running.url, running.key)
    try:
        results: dict[str, Any] = {}
        for name, log in (("embedded", embedded), ("remote", remote)):
            assert isinstance(log, AuditLog)
            eid = audit_some(log, "t")
            if isinstance(log, auditkeep.Client):
                assert log.flush(timeout=10)
            page = log.search("t", action="sdk.shared", actor="zoe", limit=10)
            assert eid in {r.event.id for r in page.items}
            index = next(r.index for r in page.items if r.event.id == eid)
            proof = log.prove_inclusion(index, "t")
            assert proof.index == index
            results[name] = log.verify_checkpoint(proof.checkpoint, "t").size > index
        assert results == {"embedded": True, "remote": True}
    finally:
        remote.close()
        embedded.close()


def test_search_time_filters_take_ns_text_and_datetimes(running: Running) -> None:
    from datetime import UTC, datetime

    with Client(running.url, running.key) as client:
        start = time.time_ns()
        eid = client.record(actor={"id": "a"}, action="sdk.times")
        assert client.flush(timeout=10)
        for since in (start - 1_000_000_000, datetime.fromtimestamp(start / 1e9 - 1, UTC), "1h"):
            page = client.search(action="sdk.times", since=since, received_since=since)
            assert [r.event.id for r in page.items] == [eid]
        assert client.search(action="sdk.times", until=start - 60_000_000_000).items == []
        with pytest.raises(ValidationError):
            client.search(since=datetime(2024, 1, 1))  # no timezone: ambiguous
