"""Property: whatever keys and operations, a key never sees or writes another tenant's events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from http_server_support import Server, event
from hypothesis import given, settings
from hypothesis import strategies as st

TENANTS = ["iso-a", "iso-b", "iso-c"]
SCOPE_SETS = ["ingest", "read", "ingest,read", "verify", "read,verify,ingest"]


@dataclass
class World:
    server: Server
    keys: list[tuple[str, str, set[str]]]  # (token, tenant, scopes)
    ids: dict[str, str]  # event id -> tenant


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    keys = [(server.key(t, s), t, set(s.split(","))) for t in TENANTS for s in SCOPE_SETS]
    ids: dict[str, str] = {}
    with server.client(server.admin) as c:
        for t in TENANTS:
            r = c.post("/v1/events", json=[event(i) for i in range(3)], params={"tenant": t})
            ids.update({x["id"]: t for x in r.json()["receipts"]})
    return World(server, keys, ids)


operation = st.tuples(
    st.integers(0, len(TENANTS) * len(SCOPE_SETS) - 1),
    st.sampled_from(["ingest", "ingest_body_tenant", "search", "get", "proof", "tiles", "checkpoint"]),
    st.one_of(st.none(), st.sampled_from(TENANTS)),
    st.integers(0, 10_000),
)


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(operation, min_size=1, max_size=6))
def test_keys_stay_in_their_tenant(world: World, ops: list[tuple[int, str, str | None, int]]) -> None:
    for k, op, named, n in ops:
        token, own, scopes = world.keys[k]
        params = {"tenant": named} if named else {}
        foreign = named is not None and named != own
        with world.server.client(token) as c:
            if op in ("ingest", "ingest_body_tenant"):
                body_tenant = TENANTS[n % 3] if op == "ingest_body_tenant" else None
                ev = event(n, **({"tenant": body_tenant} if body_tenant else {}))
                r = c.post("/v1/events", json=ev, params=params)
                if "ingest" not in scopes or foreign:
                    assert r.status_code == 403
                elif body_tenant not in (None, own):
                    assert r.status_code == 422
                else:
                    assert r.status_code == 200, r.text
                    assert r.json()["tenant"] == own
                    world.ids[r.json()["receipts"][0]["id"]] = own
            elif op == "search":
                r = c.get("/v1/events", params={**params, "limit": 50})
                if "read" not in scopes or foreign:
                    assert r.status_code == 403
                else:
                    assert r.status_code == 200
                    for rec in r.json()["events"]:
                        assert rec["tenant"] == own and rec["event"]["tenant"] == own
            elif op in ("get", "proof"):
                eid = sorted(world.ids)[n % len(world.ids)]
                if op == "get":
                    r = c.get(f"/v1/events/{eid}", params=params)
                    allowed = "read" in scopes
                else:
                    r = c.get("/v1/proofs/inclusion", params={**params, "id": eid})
                    allowed = bool(scopes & {"read", "verify"})
                if not allowed or foreign:
                    assert r.status_code == 403
                elif world.ids[eid] != own:
                    assert r.status_code == 404
                else:
                    assert r.status_code == 200
                    assert r.json()["tenant"] == own
            else:
                target = named or TENANTS[n % 3]
                path = f"/v1/logs/{target}/checkpoint" if op == "checkpoint" else f"/v1/logs/{target}/tile/entries/000.p/1"
                r = c.get(path)
                if not scopes & {"read", "verify"} or target != own:
                    assert r.status_code == 403
                else:
                    assert r.status_code == 200
                    if op == "tiles":
                        assert f'"tenant":"{own}"'.encode() in r.content


def test_every_event_is_in_the_tenant_it_was_written_for(world: World) -> None:
    with world.server.client(world.server.admin) as c:
        for eid, tenant in world.ids.items():
            assert c.get(f"/v1/events/{eid}", params={"tenant": tenant}).status_code == 200
            for other in TENANTS:
                if other != tenant:
                    assert c.get(f"/v1/events/{eid}", params={"tenant": other}).status_code == 404
        assert c.get(f"/v1/events/{uuid.uuid4()}", params={"tenant": "iso-a"}).status_code == 404
