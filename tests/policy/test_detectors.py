"""Secret detectors: what each finds, what it leaves, Luhn, idempotence, robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.policy import detectors as det
from auditkeep.policy.detectors import BUILTIN, Needles, Scanner, luhn_valid, select

SCAN = Scanner(BUILTIN)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3\nxfn/ygWep4\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer abc.DEF-123_~+/==",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        (f"token={JWT}", "token=[REDACTED:jwt]"),
        (f"sent {JWT} back", "sent [REDACTED:jwt] back"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED:aws_access_key] used"),
        ("ASIA5FLZVX4OI4ZDQJOL", "[REDACTED:aws_access_key]"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
        ),
        (f"key:\n{PEM}\nafter", "key:\n[REDACTED:private_key]\nafter"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "[REDACTED:private_key]"),
        ("login password=hunter2&user=bob", "login password=[REDACTED:password]&user=bob"),
        (
            '{"password": "hunter 2", "user": "bob"}',
            '{"password": "[REDACTED:password]", "user": "bob"}',
        ),
        ("DB_PASSWD: 's3cr3t!'", "DB_PASSWD: '[REDACTED:password]'"),
        ("client_secret=abc123", "client_secret=[REDACTED:password]"),
        ("postgres://admin:s3cret@db:5432/app", "postgres://admin:[REDACTED:password]@db:5432/app"),
        ("card 4111 1111 1111 1111 on file", "card [REDACTED:card_number] on file"),
        ("card 4111-1111-1111-1111", "card [REDACTED:card_number]"),
        ("amex 378282246310005.", "amex [REDACTED:card_number]."),
        ("write to alice.smith+audit@example.co.uk now", "write to [REDACTED:email] now"),
    ],
)
def test_detects_and_replaces_only_the_secret(text: str, expected: str) -> None:
    assert SCAN.redact(text) == expected
    assert SCAN.redact(expected) == expected  # placeholders are not matched again


@pytest.mark.parametrize(
    "text",
    [
        "nothing to see",
        "secretName: db-credentials-ref",  # a key that merely starts with a secret word
        "tokenType=bearer",
        "keyid: 5, monkey=banana",
        "AIDAICAK2CN5MGHIIDIHA",  # an IAM user id, not an access key
        "4111 1111 1111 1112",  # fails the Luhn check
        "epoch 1600000000000123",  # starts with 1: no card network
        "uuid 12345678-1234-1234-1234-123456789012",
        "version 1.4111111111111111",  # a fraction, not a card
        "user@localhost",  # no top-level domain
        "ftp://host/path@x",
        "Bearer",
    ],
)
def test_leaves_clean_text(text: str) -> None:
    assert SCAN.redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("4111-1111-1111-1111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("42")  # too short to be a card


def _with_check_digit(body: list[int]) -> str:
    total = 0
    for i, d in enumerate(reversed(body)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


_card_body = st.builds(
    lambda first, rest: [first, *rest],
    st.integers(2, 6),
    st.lists(st.integers(0, 9), min_size=11, max_size=17),
)


@given(_card_body, st.sampled_from(["", " ", "-"]))
def test_luhn_valid_numbers_are_caught(body: list[int], sep: str) -> None:
    number = _with_check_digit(body)
    assert luhn_valid(number)
    shown = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    assert SCAN.redact(f"paid with {shown} today") == "paid with [REDACTED:card_number] today"


@given(_card_body, st.integers(1, 9))
def test_luhn_invalid_numbers_are_left(body: list[int], delta: int) -> None:
    good = _with_check_digit(body)
    bad = good[:-1] + str((int(good[-1]) + delta) % 10)
    assert not luhn_valid(bad)
    assert SCAN.redact(f"ref {bad} ok") == f"ref {bad} ok"


_secrets = st.sampled_from(
    [
        "Bearer abc123",
        JWT,
        "AKIAIOSFODNN7EXAMPLE",
        "password=hunter2",
        "https://u:p@h.io",
        "4111 1111 1111 1111",
        "bob@example.com",
        PEM,
        "secret_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ]
)


@settings(max_examples=400)
@given(st.lists(st.text(max_size=40) | _secrets, max_size=6).map(" ".join))
def test_redaction_is_idempotent_and_never_crashes(text: str) -> None:
    once = SCAN.redact(text)
    assert SCAN.redact(once) == once
    assert isinstance(once, str)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text: str) -> None:
    SCAN.redact(text)
    found = SCAN.candidates([text, "x", text])
    assert set(found) <= {0, 2}


def test_pathological_inputs_finish() -> None:
    for text in [
        "a." * 4000,
        "a@" + "b." * 4000,
        "password" * 1000,
        "4" * 8000,
        "x@y.z." * 1300,
        "secret=" * 1100,
    ]:
        SCAN.redact(text)


def test_needles_without_the_accelerator_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["key", "secret", "@", "asia"]
    text = "a secret key @ asiakey keykey"
    fast = sorted(Needles(words).find(text))  # one pass, when ahocorasick_rs is installed
    monkeypatch.setattr(det, "_ac", None)
    plain = Needles(words)
    assert sorted(plain.find(text)) == fast
    assert sorted(plain.find(text.encode())) == fast
    assert fast == [(0, 9), (0, 19), (0, 23), (0, 26), (1, 2), (2, 13), (3, 15)]


def test_candidates_pick_the_strings_with_triggers() -> None:
    texts = [
        "clean",
        "mail bob@example.com",
        "x",
        "4111 1111 1111 1111",
        "Ünïcode bearer x",
        "AKIAIOSFODNN7EXAMPLE",
    ]
    found = SCAN.candidates(texts)
    assert set(found) == {1, 3, 4, 5}
    assert {d.name for d in found[1]} == {"email", "password"} or "email" in {
        d.name for d in found[1]
    }
    assert {d.name for d in found[3]} == {"card_number"}
    # Non-ASCII text is searched as text, not bytes.
    found = SCAN.candidates(["é", "4111 1111 1111 1111", "é bob@example.com"])
    assert set(found) == {1, 2}


def test_select_detectors() -> None:
    assert [d.name for d in select(["email", "jwt"])] == ["jwt", "email"]
    with pytest.raises(ValueError, match="unknown detector"):
        select(["ssn"])
    only_email = Scanner(select(["email"]))
    assert (
        only_email.redact("AKIAIOSFODNN7EXAMPLE bob@example.com")
        == "AKIAIOSFODNN7EXAMPLE [REDACTED:email]"
    )
