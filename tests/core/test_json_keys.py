"""Duplicate JSON object keys are refused, naming the key, wherever events are decoded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.model import ValidationError, decode_batch, decode_event
from auditkeep.model.jsonkeys import find_duplicate_key


def test_the_issues_input_is_refused_naming_the_key() -> None:
    raw = b'{"actor":{"id":"u"},"action":"x.y","action":"z.w"}'
    for decode in (decode_event, decode_batch):
        with pytest.raises(ValidationError) as info:
            decode(raw)
        assert info.value.path == "action" and "duplicate key 'action'" in info.value.message


def test_nested_keys_positions_and_lines() -> None:
    good = '{"actor":{"id":"u"},"action":"a.b"}'
    bad = '{"actor":{"id":"u","id":"v"},"action":"a.b"}'
    with pytest.raises(ValidationError) as info:
        decode_batch(f"[{good},{good},{bad}]".encode())
    assert (info.value.position, info.value.path) == (2, "actor.id")
    with pytest.raises(ValidationError) as info:
        decode_batch(f"{good}\n\n{bad}\n".encode())
    assert (info.value.position, info.value.path) == (2, "actor.id")
    meta = '{"actor":{"id":"u"},"action":"a.b","metadata":{"l":[{"k":1},{"k":1,"k":2}]}}'
    with pytest.raises(ValidationError) as info:
        decode_event(meta)
    assert info.value.path == "metadata.l.k"


def test_what_looks_like_a_repeat_but_is_not() -> None:
    """Explicit nulls (dropped by decoding), colons in keys and strings, escaped colons."""
    for raw in (
        '{"actor":{"id":"u","name":null},"action":"a.b","reason":null}',
        '{"actor":{"id":"u:1"},"action":"a.b","metadata":{"a:b":"c:d","e":"\\u003a\\u003A"}}',
        '{"actor":{"id":"u"},"action":"a.b","metadata":{"x":{"id":1},"y":{"id":2}}}',
    ):
        assert len(decode_batch(raw.encode())) == 1, raw
    # an escaped colon does not hide a repeat
    with pytest.raises(ValidationError) as info:
        decode_event('{"actor":{"id":"u"},"action":"x.y","action":"z.w","reason":"\\u003a"}')
    assert info.value.path == "action"


_keys = st.sampled_from(["a", "b", "c:d", "e\\u003af", ""])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(['"x"', '"y:z"', '"\\u003a"']))


def _text(value: Any) -> str:
    if isinstance(value, list) and value and value[0] == "obj":
        return "{" + ",".join(f'"{k}":{_text(v)}' for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value[1]) + "]"
    return value if isinstance(value, str) else json.dumps(value)


_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(st.tuples(_keys, inner), max_size=4).map(lambda pairs: ["obj", pairs]),
        st.lists(inner, max_size=3).map(lambda items: ["arr", items]),
    ),
    max_leaves=12,
)


def _first_repeat(value: Any, prefix: str) -> str | None:
    """The reference: the first repeated key in document order, from the generated pairs."""
    if isinstance(value, list) and value and value[0] == "obj":
        seen: set[str] = set()
        for key, item in value[1]:
            name = json.loads(f'"{key}"')
            if name in seen:
                return prefix + name
            seen.add(name)
            inner = _first_repeat(item, prefix + name + ".")
            if inner is not None:
                return inner
    elif isinstance(value, list):
        for item in value[1]:
            inner = _first_repeat(item, prefix)
            if inner is not None:
                return inner
    return None


@given(st.lists(st.tuples(_keys, _json), max_size=4))
def test_refused_exactly_when_some_object_repeats_a_key(meta: list[tuple[str, Any]]) -> None:
    raw = '{"actor":{"id":"u"},"action":"a.b","metadata":' + _text(["obj", meta]) + "}"
    repeat = _first_repeat(["obj", meta], "metadata.")
    try:
        decode_event(raw)
    except ValidationError as exc:
        if "duplicate key" in exc.message:
            assert exc.path == repeat, raw
            return
        raise
    assert repeat is None, raw
    assert find_duplicate_key(raw.encode()) is None
