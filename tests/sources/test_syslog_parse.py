"""Parsing RFC 5424 and RFC 3164 syslog messages."""

from __future__ import annotations

import contextlib
from datetime import timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import format_rfc3339, parse_rfc3339
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog import parse_rfc3164, parse_rfc5424, parse_syslog

RECEIVED = parse_rfc3339("2024-03-10T12:00:00Z")


# -- RFC 5424 ------------------------------------------------------------------------------


def test_rfc5424_example_1_with_bom() -> None:
    # RFC 5424 §6.5, example 1.
    m = parse_syslog(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"
    )
    assert m.format == "rfc5424"
    assert (m.facility, m.severity, m.version) == (4, 2, 1)
    assert m.time_ns == parse_rfc3339("2003-10-11T22:14:15.003Z")
    assert (m.hostname, m.app_name, m.procid, m.msgid) == (
        "mymachine.example.com",
        "su",
        None,
        "ID47",
    )
    assert m.msg == "'su root' failed for lonvick on /dev/pts/8"  # BOM removed
    assert m.sd == {}


def test_rfc5424_example_2_offset_and_microseconds() -> None:
    m = parse_syslog(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        b"%% It's time to make the do-nuts."
    )
    assert format_rfc3339(m.time_ns or 0) == "2003-08-24T12:14:15.000003Z"
    assert m.timestamp == "2003-08-24T05:14:15.000003-07:00"
    assert (m.facility, m.severity) == (20, 5)
    assert m.procid == "8710" and m.msgid is None
    assert m.msg == "%% It's time to make the do-nuts."


def test_rfc5424_examples_3_and_4_structured_data() -> None:
    m = parse_syslog(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"]'
    )
    assert m.sd == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert m.msg == ""


def test_rfc5424_escapes_in_param_values() -> None:
    m = parse_syslog(
        b'<14>1 - - - - - [x@1 a="say \\"hi\\"" b="back\\\\slash" c="br\\]acket" d="lit\\n"] m'
    )
    p = m.sd["x@1"]
    assert p["a"] == 'say "hi"'
    assert p["b"] == "back\\slash"
    assert p["c"] == "br]acket"
    assert p["d"] == "lit\\n"  # any other backslash is kept as written
    assert m.msg == "m"


def test_rfc5424_nil_values_and_repeats() -> None:
    m = parse_syslog(b'<14>1 - - - - - [a@1 k="1" k="2"][a@1 j="3"] text')
    assert m.time_ns is None and m.hostname is None and m.app_name is None
    assert m.sd == {"a@1": {"k": ["1", "2"], "j": "3"}}


def test_rfc5424_utf8_and_binary_message() -> None:
    m = parse_syslog("<14>1 - h a - - - héllo".encode() + b" \xff")
    assert m.msg == "héllo \\xff"


def test_rfc5424_lenient_timestamp_without_offset_uses_zone() -> None:
    m = parse_rfc5424(b"<14>1 2024-01-02T03:04:05 h a - - - x", tz=timezone(timedelta(hours=2)))
    assert format_rfc3339(m.time_ns or 0) == "2024-01-02T01:04:05Z"


@pytest.mark.parametrize(
    "data",
    [
        b"<192>1 - - - - - - x",  # PRI out of range
        b'<14>1 - - - - - [x@1 a="unterminated',  # SD element never closed
        b"<14>1 2024-13-40T00:00:00Z h a - - - x",  # no such date
        b"<14>1 - - - - - garbage",  # SD neither - nor [
        b"<14>1 - - -",  # header cut short
    ],
)
def test_rfc5424_malformed(data: bytes) -> None:
    with pytest.raises(SourceError) as info:
        parse_syslog(data)
    assert info.value.source == "syslog" and info.value.raw == data


# -- RFC 3164 ------------------------------------------------------------------------------


def test_rfc3164_classic() -> None:
    m = parse_syslog(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", RECEIVED)
    assert m.format == "rfc3164"
    assert (m.facility, m.severity) == (4, 2)
    assert format_rfc3339(m.time_ns or 0) == "2023-10-11T22:14:15Z"  # October: last year
    assert (m.hostname, m.app_name, m.procid) == ("mymachine", "su", None)
    assert m.msg == "'su root' failed"


def test_rfc3164_pid_and_padded_day() -> None:
    m = parse_syslog(b"<38>Mar  9 08:01:02 web-1 sshd[4321]: Accepted publickey for bob", RECEIVED)
    assert format_rfc3339(m.time_ns or 0) == "2024-03-09T08:01:02Z"
    assert (m.hostname, m.app_name, m.procid) == ("web-1", "sshd", "4321")
    assert m.msg == "Accepted publickey for bob"


def test_rfc3164_missing_hostname() -> None:
    m = parse_syslog(b"<13>Mar  9 08:01:02 cron[12]: job done", RECEIVED)
    assert m.hostname is None and m.app_name == "cron" and m.procid == "12"


def test_rfc3164_missing_pri_and_timestamp() -> None:
    m = parse_syslog(b"just some text", RECEIVED)
    assert (m.facility, m.severity) == (1, 5)  # user.notice
    assert m.time_ns is None and m.hostname is None
    assert m.msg == "just some text"


def test_rfc3164_tag_without_timestamp() -> None:
    m = parse_syslog(b"<13>kernel: oops")
    assert m.app_name == "kernel" and m.msg == "oops"


def test_rfc3164_iso_timestamp_year_and_fraction() -> None:
    iso = parse_syslog(b"<13>2024-03-01T10:00:00.5+01:00 host app: x", RECEIVED)
    assert format_rfc3339(iso.time_ns or 0) == "2024-03-01T09:00:00.5Z"
    assert iso.hostname == "host"
    year = parse_syslog(b"<13>Oct 11 2019 22:14:15 host app: x", RECEIVED)
    assert format_rfc3339(year.time_ns or 0) == "2019-10-11T22:14:15Z"
    frac = parse_syslog(b"<13>Mar  1 10:00:00.250 host app: x", RECEIVED)
    assert format_rfc3339(frac.time_ns or 0) == "2024-03-01T10:00:00.25Z"


def test_rfc3164_year_inference_around_new_year() -> None:
    jan1 = parse_rfc3339("2024-01-01T00:10:00Z")
    assert format_rfc3339(parse_rfc3164(b"<13>Dec 31 23:59:59 h a: x", jan1).time_ns or 0) == (
        "2023-12-31T23:59:59Z"
    )
    assert format_rfc3339(parse_rfc3164(b"<13>Jan  1 00:09:00 h a: x", jan1).time_ns or 0) == (
        "2024-01-01T00:09:00Z"
    )
    # A sender's clock a few hours ahead stays in the current year.
    assert format_rfc3339(parse_rfc3164(b"<13>Jan  1 05:00:00 h a: x", jan1).time_ns or 0) == (
        "2024-01-01T05:00:00Z"
    )
    # 29 February: the latest leap year.
    mar = parse_rfc3339("2025-03-10T00:00:00Z")
    assert format_rfc3339(parse_rfc3164(b"<13>Feb 29 10:00:00 h a: x", mar).time_ns or 0) == (
        "2024-02-29T10:00:00Z"
    )


def test_rfc3164_time_zone() -> None:
    m = parse_rfc3164(b"<13>Mar  1 10:00:00 h a: x", RECEIVED, timezone(timedelta(hours=-5)))
    assert format_rfc3339(m.time_ns or 0) == "2024-03-01T15:00:00Z"


def test_rfc3164_impossible_date_stays_in_message() -> None:
    m = parse_syslog(b"<13>Feb 30 10:00:00 h a: x", RECEIVED)
    assert m.time_ns is None
    assert "Feb 30" in m.msg


def test_rfc3164_bad_pri() -> None:
    with pytest.raises(SourceError):
        parse_syslog(b"<999>Mar  1 10:00:00 h a: x")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_any_bytes_parse_or_source_error(data: bytes) -> None:
    try:
        m = parse_syslog(data, RECEIVED)
    except SourceError as err:
        assert err.source == "syslog"
        return
    assert 0 <= m.facility <= 23 and 0 <= m.severity <= 7
    assert isinstance(m.msg, str)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            b'<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 [a@1 k="v"] msg',
            b"<34>Oct 11 22:14:15 mymachine su[1]: msg",
        ]
    ),
    st.data(),
)
def test_fuzz_truncated_messages(base: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(base)))
    with contextlib.suppress(SourceError):
        parse_syslog(base[:cut], RECEIVED)
