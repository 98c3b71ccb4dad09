"""The Accept-Encoding parser of the entry-bundle endpoint, against a reference written
from RFC 9110 section 12.5.3 over generated headers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from auditkeep.server.routes.tiles import accepts_gzip

CODINGS = ["gzip", "x-gzip", "GZip", "*", "br", "deflate", "identity", "zstd"]
Q = st.one_of(st.none(), st.sampled_from(["0", "0.0", "0.5", "1", "1.0", "0.001", "bad"]))


def _reference(items: list[tuple[str, str | None]]) -> bool:
    """gzip is acceptable when a gzip (or x-gzip) entry has q > 0 -- the highest such entry
    wins -- or, with no gzip entry at all, when ``*`` has q > 0 (the last ``*`` counts)."""

    def q(v: str | None) -> float:
        if v is None:
            return 1.0
        try:
            return float(v)
        except ValueError:
            return 0.0

    gz = [q(v) for c, v in items if c.lower() in ("gzip", "x-gzip")]
    if gz:
        return max(gz) > 0
    stars = [q(v) for c, v in items if c == "*"]
    return bool(stars) and stars[-1] > 0


@given(st.lists(st.tuples(st.sampled_from(CODINGS), Q), max_size=8), st.sampled_from([",", ", ", " ,  "]))
def test_accepts_gzip_matches_the_rfc(items: list[tuple[str, str | None]], sep: str) -> None:
    header = sep.join(c if v is None else f"{c};q={v}" for c, v in items)
    assert accepts_gzip(header) == _reference(items)


def test_edge_cases() -> None:
    assert not accepts_gzip(None) and not accepts_gzip("")
    assert accepts_gzip("gzip") and accepts_gzip(" GZIP ; Q=0.2")
    assert not accepts_gzip("gzip;q=0, *") and accepts_gzip("*;q=0.1")
    assert not accepts_gzip(",".join(["br"] * 40 + ["gzip"]))  # only the first 32 codings are read
