"""auditkeep.context: merging into events, nesting, threads, asyncio tasks, bind()."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import msgspec
import pytest

import auditkeep
from auditkeep.client.context import bind, context, current
from auditkeep.client.prepare import prepare


def event(**fields: Any) -> dict[str, Any]:
    _, data = prepare(fields)
    out: dict[str, Any] = msgspec.json.decode(data)
    return out


def test_top_level_export_is_the_context() -> None:
    assert auditkeep.context is context


def test_no_context_is_empty() -> None:
    assert current() == {}
    assert bind(actor="x") is False


def test_context_fields_reach_the_event() -> None:
    with context(actor="alice", request_id="r-1", ip="10.0.0.7", user_agent="curl/8", source="billing"):
        ev = event(action="invoice.approve")
    assert ev["actor"] == {"id": "alice", "ip": "10.0.0.7", "user_agent": "curl/8"}
    assert ev["source"] == {"service": "billing", "request_id": "r-1"}
    assert current() == {}


def test_explicit_fields_win_and_parts_merge_key_by_key() -> None:
    with context(actor={"id": "alice", "ip": "10.0.0.7"}, metadata={"a": 1, "b": 2}, category="admin"):
        ev = event(actor={"id": "bob"}, action="user.delete", metadata={"b": 3}, category="data_change")
    assert ev["actor"] == {"id": "bob", "ip": "10.0.0.7"}
    assert ev["metadata"] == {"a": 1, "b": 3}
    assert ev["category"] == "data_change"


def test_nested_contexts_merge_and_unwind() -> None:
    with context(actor="alice", request_id="r-1"):
        with context(trace_id="t-9", actor={"session_id": "s-1"}):
            inner = current()
            assert event(action="a.b")["actor"] == {"id": "alice", "session_id": "s-1"}
        assert current() == {"actor": {"id": "alice"}, "source": {"request_id": "r-1"}}
    assert inner == {
        "actor": {"id": "alice", "session_id": "s-1"},
        "source": {"request_id": "r-1", "trace_id": "t-9"},
    }


def test_none_values_are_ignored() -> None:
    with context(actor="alice", ip=None, request_id=None):
        assert current() == {"actor": {"id": "alice"}}


def test_bad_context_part_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        context(metadata=["not", "a", "mapping"])


def test_bind_updates_the_scope_seen_by_copies() -> None:
    with context(request_id="r-1") as scope:
        copied = contextvars.copy_context()
        # A handler in a thread pool runs in a copy; what it binds is seen by the request.
        copied.run(bind, actor="alice")
        assert scope.fields["actor"] == {"id": "alice"}
        assert event(action="a.b")["actor"] == {"id": "alice"}


def test_threads_see_their_own_context() -> None:
    seen: dict[str, Any] = {}
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        with context(actor=name):
            barrier.wait()
            seen[name] = event(action="a.b")["actor"]["id"]

    threads = [threading.Thread(target=work, args=(f"user{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f"user{i}": f"user{i}" for i in range(4)}


def test_a_thread_started_with_a_copy_inherits() -> None:
    got: list[str] = []
    with context(actor="alice"):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(lambda: got.append(event(action="a.b")["actor"]["id"]),))
    t.start()
    t.join()
    assert got == ["alice"]


def test_asyncio_tasks_inherit_and_stay_isolated() -> None:
    async def handler(name: str) -> tuple[str, str]:
        with context(actor=name, request_id=f"req-{name}"):
            await asyncio.sleep(0)
            child = await asyncio.create_task(asyncio.to_thread(lambda: event(action="a.b")))
            await asyncio.sleep(0)
            ev = event(action="a.b")
            assert child["actor"] == ev["actor"]
            return ev["actor"]["id"], ev["source"]["request_id"]

    async def main() -> list[tuple[str, str]]:
        with context(source="api"):
            return await asyncio.gather(*(handler(f"u{i}") for i in range(10)))

    results = asyncio.run(main())
    assert results == [(f"u{i}", f"req-u{i}") for i in range(10)]
