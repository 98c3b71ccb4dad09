"""The browser's proof code (static/proof.js) against a reference written here from RFC 9162
(RFC 6962 §2.1), for trees and indexes hypothesis picks: the JavaScript recomputes the root of
every valid audit path, and refuses a path with any hash changed or of the wrong length."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from http_server_support import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


@pytest.fixture(scope="module")
def js(console_server: Server, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(console_server.url + "/ui/login")  # a page of the console's origin
    try:
        yield page
    finally:
        ctx.close()


ROOT_OF = """async ([index, size, leaf, path]) => {
  const m = await import("/ui/static/proof.js");
  const unhex = (h) => new Uint8Array(h.match(/../g).map((b) => parseInt(b, 16)));
  try {
    const lh = await m.leafHash(unhex(leaf));
    const r = await m.rootFromInclusion(index, size, lh, path.map(unhex));
    return Array.from(r, (b) => b.toString(16).padStart(2, "0")).join("");
  } catch (e) { return "refused: " + e.message; }
}"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), size=st.integers(1, 300))
def test_js_recomputes_the_root_and_refuses_altered_paths(js: Any, data: st.DataObject, size: int) -> None:
    raw = [i.to_bytes(4, "big") + b"x" for i in range(size)]
    leaves = [_leaf(r) for r in raw]
    index = data.draw(st.integers(0, size - 1), label="index")
    root = mth(leaves)
    p = path(index, leaves)
    args = [index, size, raw[index].hex(), [h.hex() for h in p]]
    assert js.evaluate(ROOT_OF, args) == root.hex()
    if p:
        i = data.draw(st.integers(0, len(p) - 1), label="altered hash")
        bad = [h.hex() for h in p]
        bad[i] = ("00" if bad[i][:2] != "00" else "01") + bad[i][2:]
        assert js.evaluate(ROOT_OF, [index, size, raw[index].hex(), bad]) != root.hex()
        assert js.evaluate(ROOT_OF, [index, size, raw[index].hex(), [h.hex() for h in p[:-1]]]).startswith("refused")
    assert js.evaluate(ROOT_OF, [index, size, raw[index].hex(), [*args[3], "00" * 32]]).startswith("refused")
    # another leaf at this index does not lead to the root
    assert js.evaluate(ROOT_OF, [index, size, (raw[index] + b"!").hex(), args[3]]) != root.hex()
