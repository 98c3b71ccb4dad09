"""The caller's side of record(): validation where the event is made, ids, times, bytes."""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import msgspec
import pytest

from auditkeep.client.ids import IdGenerator, new_id
from auditkeep.client.prepare import prepare, prepare_many, utc_now
from auditkeep.model import Event, Limits, ValidationError, parse_rfc3339
from auditkeep.model.ids import UUID_PATTERN


def decoded(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(data)
    return out


def test_ids_are_uuidv7_and_strictly_increasing() -> None:
    gen = IdGenerator()
    ids = [gen() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids[:50] + ids[-50:]:
        assert re.match(UUID_PATTERN, text)
        u = uuid.UUID(text)
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert str(u) == text


def test_id_batches_continue_the_single_ids() -> None:
    gen = IdGenerator()
    ids = [gen(), *gen.batch(3000), gen(), *gen.batch(1), *gen.batch(0), *gen.batch(5000)]
    assert len(ids) == 8003
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids[:50] + ids[-50:]:
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (7, uuid.RFC_4122, text)


def test_id_time_is_now() -> None:
    before = time.time_ns() // 1_000_000
    ms = uuid.UUID(new_id()).int >> 80
    assert before <= ms <= time.time_ns() // 1_000_000


def test_ids_unique_across_threads() -> None:
    gen = IdGenerator()
    out: list[list[str]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        out[i].extend(gen() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [x for part in out for x in part]
    assert len(set(everything)) == len(everything)
    for part in out:
        assert part == sorted(part)


def test_clock_is_rfc3339_utc_and_current() -> None:
    text = utc_now()
    assert text.endswith("Z")
    assert abs(parse_rfc3339(text) - time.time_ns()) < 5_000_000_000
    assert not re.search(r"\.\d*0Z$", text)  # trailing zeros trimmed, as the ledger normalises


def test_prepare_assigns_id_and_time_and_keeps_given_ones() -> None:
    eid, data = prepare({"actor": {"id": "alice"}, "action": "user.login"})
    ev = decoded(data)
    assert ev["id"] == eid and ev["outcome"] == "unknown" and "time" in ev
    given = "0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E"
    eid2, data2 = prepare({"actor": {"id": "a"}, "action": "a.b", "id": given, "time": "2024-05-01T14:00:00+02:00"})
    ev2 = decoded(data2)
    assert eid2 == given.lower() == ev2["id"]
    assert ev2["time"] == "2024-05-01T12:00:00Z"
    # What is queued is a valid Event as the server will decode it.
    assert msgspec.json.decode(data2, type=Event).action == "a.b"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"action": "user.login"}, "actor"),
        ({"actor": {"id": "a"}, "action": "not an action"}, "action"),
        ({"actor": {"id": "a"}, "action": "a.b", "outcome": "maybe"}, "outcome"),
        ({"actor": {"id": "a", "ip": "999.1.1.1"}, "action": "a.b"}, "actor.ip"),
        ({"actor": {"id": "a"}, "action": "a.b", "colour": "red"}, "colour"),
        ({"actor": {"id": "a"}, "action": "a.b", "metadata": {"x": float("nan")}}, "metadata.x"),
        ({"actor": {"id": "a"}, "action": "a.b", "received_at": "2024-01-01T00:00:00Z"}, "received_at"),
        ({"actor": {"id": "a"}, "action": "a.b", "tenant": "other"}, "tenant"),
        ({"actor": {"id": "a", "name": "x" * 9000}, "action": "a.b"}, "actor.name"),
    ],
)
def test_bad_events_raise_in_the_caller(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as info:
        prepare(dict(fields), tenant="acme")
    assert info.value.path == path


def test_event_size_limit_is_checked_locally() -> None:
    limits = Limits(max_event_bytes=300)
    with pytest.raises(ValidationError, match="bytes, more than 300"):
        prepare({"actor": {"id": "a"}, "action": "a.b", "metadata": {"k": "v" * 400}}, limits=limits)


def test_prepare_many_is_all_or_nothing_and_names_the_position() -> None:
    good = {"actor": {"id": "a"}, "action": "a.b"}
    with pytest.raises(ValidationError) as info:
        prepare_many([good, good, {"actor": {"id": "a"}, "action": "bad action"}])
    assert info.value.position == 2
    ev = msgspec.convert({"actor": {"id": "x"}, "action": "e.f"}, Event)
    out = prepare_many([good, ev])
    assert [decoded(d)["action"] for _, d in out] == ["a.b", "e.f"]
    assert ev.id is None  # the caller's Event object is not changed


def test_tenant_names_are_checked_locally() -> None:
    from auditkeep.client.prepare import tenant_name

    assert tenant_name(None) is None
    assert tenant_name("acme-eu.1") == "acme-eu.1"
    for bad in ("Acme", "", "a b", "x" * 64):
        with pytest.raises(ValidationError):
            tenant_name(bad)
