"""RFC 6587 framing: octet counting and LF/NUL trailers, bounded, detected per connection."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog import Deframer

MSGS = [b"<14>1 - h a - - - one", b"<14>1 - h a - - - two words", b"<13>three"]


def octets(msgs: list[bytes]) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in msgs)


def frames(d: Deframer, chunks: list[bytes]) -> list[bytes | SourceError]:
    out = []
    for c in chunks:
        out += d.feed(c)
    return out + d.close()


def test_octet_counting() -> None:
    d = Deframer()
    assert frames(d, [octets(MSGS)]) == MSGS
    assert d.mode == "octet"


def test_octet_counting_keeps_newlines_inside_messages() -> None:
    msg = b"<14>1 - h a - - - line one\nline two"
    assert frames(Deframer(), [octets([msg, msg])]) == [msg, msg]


def test_lf_crlf_and_nul_trailers() -> None:
    d = Deframer()
    assert frames(d, [b"<13>a\n<13>b\r\n<13>c\x00<13>d\n\n<13>e"]) == [
        b"<13>a", b"<13>b", b"<13>c", b"<13>d", b"<13>e"]  # fmt: skip
    assert d.mode == "trailer"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=10), st.booleans())
def test_any_split_gives_the_same_messages(cuts: list[int], counted: bool) -> None:
    data = octets(MSGS) if counted else b"".join(m + b"\n" for m in MSGS)
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos : pos + c])
        pos += c
    chunks.append(data[pos:])
    assert frames(Deframer(), chunks) == MSGS


def test_byte_at_a_time() -> None:
    data = octets(MSGS)
    assert frames(Deframer(), [data[i : i + 1] for i in range(len(data))]) == MSGS


def test_oversize_octet_message_is_skipped_and_the_stream_goes_on() -> None:
    big = b"<14>" + b"x" * 500
    d = Deframer(max_size=100)
    out = d.feed(octets([MSGS[0], big])[:200])
    out += d.feed(octets([MSGS[0], big])[200:] + octets([MSGS[1]]))
    assert out[0] == MSGS[0]
    assert isinstance(out[1], SourceError)
    assert "504 bytes" in out[1].reason and len(out[1].raw) == 100
    assert out[2] == MSGS[1]
    assert not d.broken


def test_oversize_trailer_message_is_skipped_and_the_stream_goes_on() -> None:
    d = Deframer(max_size=50)
    out = d.feed(b"<13>ok\n<13>" + b"y" * 80)
    out += d.feed(b"y" * 80 + b"\n<13>after\n")
    assert out[0] == b"<13>ok"
    assert isinstance(out[1], SourceError) and len(out[1].raw) == 50
    assert out[2:] == [b"<13>after"]
    assert d.close() == []


def test_garbage_length_breaks_the_stream() -> None:
    d = Deframer()
    out = d.feed(b"10 <13>hello!12abc <13>x")
    assert out[0] == b"<13>hello!"
    assert isinstance(out[1], SourceError)
    assert d.broken
    assert d.feed(b"more") == []


def test_connection_closed_inside_a_counted_message() -> None:
    d = Deframer()
    assert d.feed(b"100 <13>only part") == []
    (err,) = d.close()
    assert isinstance(err, SourceError) and err.raw == b"100 <13>only part"  # as received


def test_last_trailer_message_without_newline_counts() -> None:
    d = Deframer()
    assert d.feed(b"<13>a\n<13>b") == [b"<13>a"]
    assert d.close() == [b"<13>b"]


def test_leading_blank_bytes_do_not_decide_the_mode() -> None:
    d = Deframer()
    assert d.feed(b"\n\n") == []
    assert d.feed(octets(MSGS[:1])) == MSGS[:1]
    assert d.mode == "octet"


def test_line_ends_after_counted_messages_are_tolerated() -> None:
    d = Deframer()
    data = b"".join(b"%d %s\r\n" % (len(m), m) for m in MSGS)
    assert d.feed(data) == MSGS
    assert not d.broken
    assert d.close() == []
