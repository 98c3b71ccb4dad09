"""Bad input gets a clear error naming the field, never a traceback, and nothing is stored."""

from __future__ import annotations

import json

import pytest

from auditkeep.model import Limits, ValidationError, decode_batch, decode_event, validate_event
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339


def _err(data: bytes | str, limits: Limits | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        for ev in decode_batch(data.encode() if isinstance(data, str) else data):
            validate_event(ev, limits or Limits())
    return info.value


def ev(**extra: object) -> str:
    base: dict[str, object] = {"actor": {"id": "alice"}, "action": "user.login"}
    base.update(extra)
    return json.dumps(base)


def test_valid_event_is_normalised() -> None:
    e = decode_event(ev(time="2024-05-01T14:00:00.500+02:00", id="0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E"))
    checked = validate_event(e)
    assert e.time == "2024-05-01T12:00:00.5Z"
    assert e.id == "0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e"
    assert e.outcome == "unknown"
    assert checked.time_ns == parse_rfc3339("2024-05-01T12:00:00.5Z")


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (ev(time="2024-05-01T12:00:00"), "time", "RFC 3339"),
        (ev(time="2024-02-30T12:00:00Z"), "time", "invalid date"),
        (ev(id="not-a-uuid"), "id", "UUID"),
        (ev(action="has space"), "action", "dotted verb"),
        (ev(outcome="maybe"), "outcome", "expected one of"),
        (ev(category="fun"), "category", "expected one of"),
        (ev(received_at="2024-05-01T12:00:00Z"), "received_at", "set by the ledger"),
        (ev(sealed={"a": "b"}), "sealed", "set by the ledger"),
        (ev(bogus=1), "bogus", "unknown field"),
        (json.dumps({"action": "x"}), "actor", "required"),
        (json.dumps({"actor": {"id": 5}, "action": "x"}), "actor.id", "expected `str`"),
        (json.dumps({"actor": {"id": "a", "ip": "10.0.0.300"}, "action": "x"}), "actor.ip", "not an IP"),
        (ev(metadata={"n": 2**60}), "metadata.n", "2^53"),
        (ev(metadata={"a": {"b": "x" * 9000}}), "metadata.a.b", "longer than 8192"),
        (ev(metadata={"a": [1, "ok", None, True, -(2**53)]}), "metadata.a[4]", "2^53"),
        (ev(metadata={"a": [{"b": [0, 2**53]}]}), "metadata.a[0].b[1]", "2^53"),
        (ev(metadata={"a": ["ok", "x" * 9000]}), "metadata.a[1]", "longer than 8192"),
        (ev(reason="x" * 9000), "reason", "longer than 8192"),
    ],
)
def test_field_errors(data: str, field: str, fragment: str) -> None:
    e = _err(data)
    assert e.path == field
    assert fragment in e.message
    assert field in str(e)


def test_depth_limit() -> None:
    nested: dict[str, object] = {"leaf": 1}
    for _ in range(9):
        nested = {"k": nested}
    e = _err(ev(metadata=nested))
    assert "nested deeper than 8" in e.message
    assert e.path.startswith("metadata.k.k.k")


def test_key_count_limit_is_configurable() -> None:
    meta = {f"k{i}": i for i in range(10)}
    assert _err(ev(metadata=meta), Limits(max_keys=5)).message.startswith("object has 10 keys")
    for e in decode_batch(ev(metadata=meta).encode()):
        validate_event(e, Limits(max_keys=10))


def test_malformed_json_and_invalid_utf8() -> None:
    assert "malformed JSON" in _err(b'{"actor": {').message
    assert "invalid UTF-8" in _err(b'{"actor": {"id": "\xff"}, "action": "x"}').message


def test_nan_and_infinity_rejected() -> None:
    assert "malformed JSON" in _err(b'{"actor": {"id": "a"}, "action": "x", "metadata": {"v": NaN}}').message
    assert "out of range" in _err(b'{"actor": {"id": "a"}, "action": "x", "metadata": {"v": 1e999}}').message


def test_batch_position_is_named() -> None:
    batch = "[" + ev() + "," + ev() + "," + json.dumps({"actor": {"id": 1}, "action": "x"}) + "]"
    e = _err(batch)
    assert e.position == 2
    assert str(e).startswith("event 2: actor.id")
    lines = "\n".join([ev(), ev(), "{broken"])
    e = _err(lines)
    assert e.position == 2


def test_time_roundtrip_ns() -> None:
    for text in ["1970-01-01T00:00:00Z", "2024-02-29T23:59:59.999999999Z", "0001-01-01T00:00:00.000000001Z"]:
        assert format_rfc3339(parse_rfc3339(text)) == text
    assert parse_rfc3339("2024-01-01T01:00:00+01:00") == parse_rfc3339("2024-01-01T00:00:00Z")


def test_ip_check_agrees_with_ipaddress() -> None:
    import ipaddress

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from auditkeep.model.validate import is_ip as _is_ip

    octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "-1", ""]))

    @settings(max_examples=500)
    @given(st.one_of(st.lists(octet, min_size=3, max_size=5).map(".".join), st.ip_addresses().map(str), st.text(max_size=20)))
    def check(text: str) -> None:
        try:
            ipaddress.ip_address(text)
            expected = True
        except ValueError:
            expected = False
        assert _is_ip(text) == expected

    check()
