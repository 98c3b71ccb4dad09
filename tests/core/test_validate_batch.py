"""validate_batch (the append path's validation of a whole batch) gives every event the
outcome validate_event gives it: the same normalised event and exact flag, or the same
error at the same position."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import Limits, ValidationError, validate_event
from auditkeep.model.event import Actor, Event, Resource, Submitter
from auditkeep.model.validate_batch import validate_batch

TIMES = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T23:59:59.123456789Z",
    "2026-01-01T12:00:00.120Z",  # trailing zero: normalised to .12
    "2026-01-01T12:00:00.000000000Z",  # no fraction left
    "2026-01-01T12:00:00.0Z",
    "2026-01-01T12:00:00.1234567890Z",  # ten digits
    "2026-01-01T12:00:00+02:00",
    "2026-02-30T12:00:00Z",  # no such day
    "2026-01-01T24:00:00Z",
    "2026-01-01T12:60:00Z",
    "2026-01-01T12:00:60Z",
    "1677-12-31T23:59:59Z",  # before the time bounds
    "1678-01-01T00:00:00Z",
    "2261-12-31T23:59:59.999999999Z",
    "2262-01-01T00:00:00Z",  # after
    "2026-01-01t12:00:00z",
    "2026-01-01T12:00:00Z\n2026-01-01T12:00:00Z",  # two valid lines are not one time
    "not a time",
]
IPS = ["10.0.0.1", "255.255.255.255", "10.0.0.300", "::1", "fe80::1%eth0", "1.2.3", "10.0.0.1\n10.0.0.2", ""]
STRINGS = st.sampled_from(["a", "x" * 20, "x" * 21, "é", "\U0001f600", "\ud800"])
META = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**54), 2**54) | st.floats(allow_nan=True) | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=8,
)
LIMITS = Limits(max_string=20, max_keys=2, max_depth=3, max_array=2)


@st.composite
def events(draw: st.DrawFn) -> Event:
    maybe = lambda s: draw(st.none() | s)  # noqa: E731
    return Event(
        actor=Actor(
            id=draw(st.sampled_from(["u1", "U2", "x" * 21])),
            name=maybe(STRINGS),
            ip=maybe(st.sampled_from(IPS)),
            user_agent=maybe(STRINGS),
        ),
        action="a.b",
        id=maybe(st.sampled_from(["0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E", "0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6f"])),
        time=maybe(st.sampled_from(TIMES)),
        received_at=draw(st.sampled_from([None] * 9 + ["2026-01-01T00:00:00Z"])),
        tenant=maybe(st.sampled_from(["acme", "other"])),
        resource=maybe(st.builds(Resource, id=st.none() | STRINGS)),
        outcome=maybe(st.sampled_from(["success", "failure"])),
        reason=maybe(STRINGS),
        submitter=draw(st.sampled_from([None] * 9 + [Submitter("key", "k")])),
        metadata=maybe(st.dictionaries(STRINGS, META, max_size=3)),
    )


def _outcome(f: Any) -> tuple[str, Any]:
    try:
        return "ok", f()
    except ValidationError as exc:
        return "error", (exc.message, exc.path, exc.position)


def _one_by_one(evs: list[Event], limits: Limits, tenant: str | None) -> list[bool]:
    out = []
    for i, ev in enumerate(evs):
        try:
            out.append(validate_event(ev, limits, tenant).exact)
        except ValidationError as exc:
            raise exc.at(i) from None
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(events(), min_size=1, max_size=6), st.sampled_from([None, "acme"]), st.booleans())
def test_batch_equals_one_by_one(evs: list[Event], tenant: str | None, small: bool) -> None:
    limits = LIMITS if small else Limits()
    a, b = copy.deepcopy(evs), copy.deepcopy(evs)
    got = _outcome(lambda: validate_batch(a, limits, tenant))
    want = _outcome(lambda: _one_by_one(b, limits, tenant))
    assert got == want
    if want[0] == "ok":
        assert [msgspec.to_builtins(e) for e in a] == [msgspec.to_builtins(e) for e in b]


def test_error_names_the_position() -> None:
    evs = [Event(actor=Actor(id="a"), action="a.b", time="2026-01-01T00:00:00Z") for _ in range(5)]
    evs[3].actor.ip = "10.0.0.300"
    with pytest.raises(ValidationError) as info:
        validate_batch(evs)
    assert (info.value.position, info.value.path) == (3, "actor.ip")


def test_normalises_like_validate_event() -> None:
    evs = [
        Event(actor=Actor(id="a"), action="a.b", time="2026-01-01T12:00:00.500+02:00", id="0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E"),
        Event(actor=Actor(id="b"), action="a.b", time="2026-01-01T10:00:00.5Z", metadata={"f": 1.5}),
    ]
    assert validate_batch(evs) == [False, True]
    assert [e.time for e in evs] == ["2026-01-01T10:00:00.5Z"] * 2
    assert evs[0].id == "0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e"
    assert [e.outcome for e in evs] == ["unknown", "unknown"]


def _nested(depth: int, inner: Any) -> Any:
    """A metadata object ``depth`` levels deep (itself the first), lists and objects in turn."""
    value = inner
    for level in range(depth - 1, 0, -1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


@pytest.mark.parametrize("max_depth", [0, 1, 2, 3, 4, 8])
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 9])
def test_metadata_depth_and_values(max_depth: int, depth: int) -> None:
    limits = Limits(max_depth=max_depth)
    for inner in ["x", 1, 2**53, 1.5, None, ("a", "b"), {"a", "b"}, "\ud800", b"x"]:
        evs = [Event(actor=Actor(id="a"), action="a.b", metadata=_nested(depth, inner)) for _ in range(2)]
        a, b = copy.deepcopy(evs), copy.deepcopy(evs)
        got = _outcome(lambda: validate_batch(a, limits))  # noqa: B023
        want = _outcome(lambda: _one_by_one(b, limits, None))  # noqa: B023
        assert got == want, (depth, inner)
