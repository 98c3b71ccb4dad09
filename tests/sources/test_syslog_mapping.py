"""syslog messages mapped to the Event model."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import Limits, parse_rfc3339, validate_event
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog import SEVERITY_TO_MODEL, map_syslog, parse_syslog

RECEIVED = parse_rfc3339("2024-03-10T12:00:00Z")


def event(data: bytes, **kw: object):  # type: ignore[no-untyped-def]
    ev = map_syslog(parse_syslog(data, RECEIVED), received_ns=RECEIVED, **kw)  # type: ignore[arg-type]
    validate_event(ev)
    return ev


def test_audit_structured_data_says_who_did_what() -> None:
    ev = event(
        b"<86>1 2024-05-01T12:00:00Z web1 sshd 123 ID9 "
        b'[audit@32473 actor="alice" actor_type="user" action="user.login" outcome="failure" '
        b'actor_ip="10.0.0.5" session_id="s-1" resource_type="host" resource_name="web1" '
        b'request_id="r-7" category="authentication"] Failed password for alice',
        peer="192.0.2.9:40000",
    )
    assert (ev.actor.id, ev.actor.type, ev.actor.ip, ev.actor.session_id) == (
        "alice", "user", "10.0.0.5", "s-1")  # fmt: skip
    assert ev.action == "user.login"
    assert ev.outcome == "failure"
    assert ev.category == "authentication"
    assert ev.time == "2024-05-01T12:00:00Z"
    assert ev.reason == "Failed password for alice"
    assert ev.resource is not None and (ev.resource.type, ev.resource.name) == ("host", "web1")
    assert ev.source is not None
    assert (ev.source.host, ev.source.service, ev.source.request_id) == ("web1", "sshd", "r-7")
    meta = ev.metadata
    assert meta is not None
    assert meta["sd"]["audit@32473"]["actor"] == "alice"
    assert meta["syslog"] == {
        "format": "rfc5424",
        "facility": "authpriv",
        "severity": "info",
        "procid": "123",
        "msgid": "ID9",
        "peer": "192.0.2.9:40000",
    }


def test_invalid_audit_values_fall_back_and_stay_in_sd() -> None:
    ev = event(
        b'<14>1 - h app - - [audit actor="bob" action="not valid!" outcome="maybe" '
        b'actor_ip="nope" actor_type="robot"] hi'
    )
    assert ev.action == "syslog.app"
    assert ev.outcome == "unknown"  # filled by validation
    assert ev.actor.id == "bob" and ev.actor.ip is None and ev.actor.type == "user"
    assert ev.metadata is not None
    assert ev.metadata["sd"]["audit"]["action"] == "not valid!"
    assert ev.metadata["sd"]["audit"]["actor_ip"] == "nope"


def test_default_actor_and_action() -> None:
    ev = event(b"<38>Mar  9 08:01:02 web-1 sshd[4321]: Accepted publickey for bob")
    assert (ev.actor.id, ev.actor.type) == ("host:web-1", "system")
    assert ev.action == "syslog.sshd"
    assert ev.category == "authentication"  # auth facility
    assert ev.severity == "info"
    assert ev.time == "2024-03-09T08:01:02Z"
    assert ev.metadata is not None and ev.metadata["syslog"]["procid"] == "4321"


def test_no_host_uses_the_peer_and_no_app_uses_the_facility() -> None:
    ev = event(b"<134>hello", peer="198.51.100.4:514")
    assert ev.actor.id == "host:198.51.100.4"
    assert ev.action == "syslog.local0"
    assert ev.source is not None and ev.source.host == "198.51.100.4"
    assert ev.time == "2024-03-10T12:00:00Z"  # the time of reception
    assert ev.metadata is not None and ev.metadata["syslog"]["time_from"] == "received"
    assert event(b"<134>hello").actor.id == "host:unknown"


@pytest.mark.parametrize(
    ("app", "action"),
    [
        (b"postfix/smtpd", "syslog.postfix_smtpd"),
        (b"org.gnome.Shell", "syslog.org.gnome.Shell"),
        (b"..odd..", "syslog.odd"),
        (b"caf\xc3\xa9", "syslog.caf_"),
    ],
)
def test_app_names_become_valid_actions(app: bytes, action: str) -> None:
    assert event(b"<14>1 - h " + app + b" - - - x").action == action


@pytest.mark.parametrize("sev", range(8))
def test_severity_mapping(sev: int) -> None:
    ev = event(f"<{8 + sev}>1 - h a - - - x".encode())
    assert ev.severity == SEVERITY_TO_MODEL[sev]
    assert ev.severity == ["critical", "critical", "critical", "high", "medium", "low", "info",
                           "debug"][sev]  # fmt: skip


def test_long_message_is_clipped_with_the_full_text_kept() -> None:
    limits = Limits()
    text = "x" * (limits.max_string * 2 + 10)
    ev = event(b"<14>1 - h a - - - " + text.encode())
    assert ev.reason == text[: limits.max_string]
    assert ev.metadata is not None
    assert "".join(ev.metadata["message"]) == text
    assert all(len(p) <= limits.max_string for p in ev.metadata["message"])


def test_message_too_large_for_an_event_is_a_source_error() -> None:
    data = b"<14>1 - h a - - - " + b"y" * 70_000
    with pytest.raises(SourceError) as info:
        map_syslog(parse_syslog(data))
    assert info.value.raw == data
    assert "exceeds" in info.value.reason


def test_structured_data_over_the_limits_is_a_source_error() -> None:
    params = b" ".join(b'p%d="v"' % i for i in range(100))
    with pytest.raises(SourceError):
        map_syslog(parse_syslog(b"<14>1 - h a - - [x@1 " + params + b"] m"))


def test_sd_reason_overrides_and_keeps_the_text() -> None:
    ev = event(b'<14>1 - h a - - [audit@1 reason="policy"] the text')
    assert ev.reason == "policy"
    assert ev.metadata is not None and ev.metadata["message"] == ["the text"]


def test_bsd_timestamp_is_kept_as_written() -> None:
    ev = event(b"<38>Mar  9 08:01:02 web-1 sshd[1]: x")
    assert ev.metadata is not None and ev.metadata["syslog"]["timestamp"] == "Mar  9 08:01:02"


_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters='"\\]'),
    max_size=40,
)
_name = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='= ]"'),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    host=_name,
    app=_name,
    sd=st.dictionaries(_name, st.dictionaries(_name, _text, max_size=4), max_size=3),
    text=st.text(max_size=200),
    sev=st.integers(min_value=0, max_value=191),
)
def test_built_within_the_model_without_validating(
    host: str, app: str, sd: dict[str, dict[str, str]], text: str, sev: int
) -> None:
    # With validate=False the source still builds only what the model accepts.
    sd_text = "".join(
        f"[{i}" + "".join(f' {k}="{v}"' for k, v in p.items()) + "]" for i, p in sd.items()
    )
    data = f"<{sev}>1 2024-01-01T00:00:00Z {host} {app} - - {sd_text or '-'} {text}"
    raw = data.encode("utf-8", "surrogatepass")
    try:
        ev = map_syslog(parse_syslog(raw), validate=False)
    except SourceError:
        return
    validate_event(ev)
    # The bound under which the mapping skips measuring the event's size.
    assert len(msgspec.json.encode(ev)) <= 12 * len(raw) + 4096
