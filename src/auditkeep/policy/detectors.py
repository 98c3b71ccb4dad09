"""Detectors of secrets and personal data in free text.

Each detector is a regular expression with cheap literal *triggers*: a string is searched
only when it contains one of them (lower-cased), so clean text costs a few substring tests.
A match is replaced by a typed placeholder such as ``[REDACTED:aws_access_key]``; only the
secret part of a match is replaced (``Bearer [REDACTED:bearer_token]``). Placeholders are
never matched again, so redaction is idempotent.
"""

from __future__ import annotations

import bisect
import importlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_ac: Any
try:  # optional: finds all triggers in one pass (Aho-Corasick); plain `find` otherwise
    _ac = importlib.import_module("ahocorasick_rs")
except ImportError:  # pragma: no cover - depends on the environment
    _ac = None

PLACEHOLDER = "[REDACTED:{}]"
_NOT_REDACTED = r"(?!\[REDACTED)"

# Key names whose values are secrets, wherever they appear (key=value text, JSON text, and
# the keys of structured metadata): ends with one of these words, any case or separator.
SECRET_WORDS = (
    r"password|passwd|passphrase|pwd|secret|client[_-]?secret|api[_-]?key|apikey|"
    r"access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|"
    r"refresh[_-]?token|id[_-]?token|session[_-]?token|token|credentials?"
)
# Literals one of which every secret-looking key name contains (lower case).
KEY_TRIGGERS: tuple[str, ...] = ("pass", "pwd", "secret", "token", "key", "credential")
SECRET_KEY = re.compile(
    rf"(?i)^(?:.*?)(?:{SECRET_WORDS})$|^(?:proxy-)?authorization$|^(?:set-)?cookie$"
)


@dataclass(frozen=True, slots=True, eq=False)
class Detector:
    """One kind of secret.

    ``triggers`` are lower-case literals, one of which any match contains; ``probe`` is a
    loose pattern, tried where a trigger occurs in the lower-cased JSON text of a whole
    event, that holds for every match (and some non-matches: JSON escaping may hide the
    exact form). Strings are searched with ``pattern`` only when both say they may hold
    a secret. ``groups`` names the
    part of a match to replace (0: all of it; with alternatives, the first group that took
    part); ``check`` can veto a match (the Luhn check of card numbers).
    """

    name: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...] = ()  # empty: a card-like run of digits is the trigger
    groups: tuple[int | str, ...] = (0,)
    check: Callable[[str], bool] | None = None
    probe: re.Pattern[bytes] | None = None
    btriggers: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "btriggers", tuple(t.encode() for t in self.triggers))

    def redact(self, text: str) -> str:
        """``text`` with every match replaced by this detector's placeholder."""
        return self.pattern.sub(self._replace, text)

    def _replace(self, m: re.Match[str]) -> str:
        group = next((g for g in self.groups if m.group(g) is not None), 0)
        if self.check is not None and not self.check(m.group(group)):
            return m.group(0)
        placeholder = PLACEHOLDER.format(self.name)
        if group == 0:
            return placeholder
        start, end = m.span(group)
        if start == end:
            return m.group(0)
        base = m.start(0)
        whole = m.group(0)
        return whole[: start - base] + placeholder + whole[end - base :]


# In JSON text a quote is \" and a newline \n: the probes allow for both.
_J_SPACE = rb"(?:\s|\\[nrt])*"
# Inside a JSON string a double quote is escaped; an unescaped one ends a key, which is
# structure, not text the pattern could match.
_J_QUOTE = rb"(?:\\[\"']|')?"


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check over the digits of ``number`` (separators ignored)."""
    digits = [ord(c) - 48 for c in number if "0" <= c <= "9"]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


PRIVATE_KEY = Detector(
    "private_key",
    re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
        re.S,
    ),
    ("key",),
    probe=re.compile(rb"key(?: block)?-----"),
)
BEARER = Detector(
    "bearer_token",
    re.compile(rf"(?i)\bbearer\s+(?P<tok>{_NOT_REDACTED}[A-Za-z0-9\-._~+/]+=*)"),
    ("bearer",),
    ("tok",),
    probe=re.compile(rb"bearer(?:\s|\\[nrt])+[a-z0-9\-._~+/]"),
)
JWT = Detector(
    "jwt",
    re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("eyj",),
    probe=re.compile(rb"eyj[a-z0-9_-]{4,}\.eyj"),
)
AWS_ACCESS_KEY = Detector(
    "aws_access_key",
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("akia", "asia", "abia", "acca"),
    probe=re.compile(rb"[a-z]{4}[a-z0-9]{16}"),
)
AWS_SECRET_KEY = Detector(
    "aws_secret_key",
    re.compile(
        r"(?i)(?:aws)?[_.-]?secret[_.-]?(?:access)?[_.-]?key[\"']?\s*[:=]\s*[\"']?"
        r"(?P<key>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
    ),
    ("secret",),
    ("key",),
    probe=re.compile(rb"secret[_.-]?(?:access)?[_.-]?key" + _J_QUOTE + _J_SPACE + rb"[:=]"),
)
PASSWORD = Detector(
    "password",
    re.compile(
        rf"(?i)(?<![A-Za-z0-9])[A-Za-z0-9_.-]{{0,40}}?(?:{SECRET_WORDS})[\"']?\s*[:=]\s*"
        rf"(?:\"(?P<pw_dq>{_NOT_REDACTED}[^\"\\\n]+)\"|'(?P<pw_sq>{_NOT_REDACTED}[^'\\\n]+)'"
        rf"|(?P<pw_bare>{_NOT_REDACTED}[^\s\"'&;,}}\]]+))"
    ),
    KEY_TRIGGERS,
    ("pw_dq", "pw_sq", "pw_bare"),
    probe=re.compile(rb"[a-z0-9_.-]{0,40}" + _J_QUOTE + _J_SPACE + rb"[:=]"),
)
URL_PASSWORD = Detector(
    "password",
    re.compile(rf"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]*:(?P<upw>{_NOT_REDACTED}[^/\s@]+)@"),
    ("://",),
    ("upw",),
    probe=re.compile(rb"://[^/\s:@]*:[^/\s@]+@"),
)
CARD_NUMBER = Detector(
    "card_number",
    # 13 to 19 digits, plain or in the printed groupings (4-4-4-4[-3], 4-6-5, 4-6-4), first
    # digit 2-6 (the card networks' ranges: keeps epoch-millisecond times out), not inside
    # a longer token such as a UUID; then the Luhn check.
    re.compile(
        r"(?<![\w.\-])[2-6](?:\d{12,18}"
        r"|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
        r"|\d{3}(?P<a>[ -])\d{6}(?P=a)\d{4,5})(?![\w\-])"
    ),
    (),
    (0,),
    luhn_valid,
)
EMAIL = Detector(
    "email",
    re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
        r"\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
    ),
    ("@",),
    probe=re.compile(rb"@[a-z0-9-]+\.[a-z]"),
)

# Order matters: the most specific first, so a secret is named for what it is.
BUILTIN: tuple[Detector, ...] = (
    PRIVATE_KEY,
    JWT,
    BEARER,
    AWS_ACCESS_KEY,
    AWS_SECRET_KEY,
    URL_PASSWORD,
    PASSWORD,
    CARD_NUMBER,
    EMAIL,
)
NAMES: tuple[str, ...] = tuple(dict.fromkeys(d.name for d in BUILTIN))


def select(names: Iterable[str] | None = None) -> tuple[Detector, ...]:
    """The built-in detectors called ``names`` (all when None), in their fixed order."""
    if names is None:
        return BUILTIN
    wanted = set(names)
    unknown = wanted - set(NAMES)
    if unknown:
        raise ValueError(
            f"unknown detector(s) {', '.join(sorted(unknown))}; known: {', '.join(NAMES)}"
        )
    return tuple(d for d in BUILTIN if d.name in wanted)


# bytes.translate table: digits become "0", spaces and dashes "-", the rest "x"; a card
# number in any grouping the detector accepts then shows one of these shapes.
_DIGITS = bytes(
    (0x30 if 0x30 <= i <= 0x39 else 0x2D if i in (0x20, 0x2D) else 0x78) for i in range(256)
)
_CARD_SHAPES = (b"0" * 13, b"0000-0000-0000", b"0000-000000-0000")  # `in` beats a regex here
_CARD_ANY = re.compile(r"\d{13}|\d{4}[ -]\d{4}[ -]\d{4}|\d{4}[ -]\d{6}[ -]\d{4}")


class Needles:
    """Finds where any of a set of literals occurs, in one pass when the optional
    ``ahocorasick_rs`` package is installed (a few `find` loops otherwise)."""

    __slots__ = ("_bytes_ac", "_str_ac", "bwords", "words")

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(dict.fromkeys(words))
        self.bwords = tuple(w.encode() for w in self.words)
        self._str_ac: Any = None
        self._bytes_ac: Any = None
        if _ac is not None and self.words:
            self._str_ac = _ac.AhoCorasick(list(self.words))
            self._bytes_ac = _ac.BytesAhoCorasick(list(self.bwords))

    def find(self, text: str | bytes) -> list[tuple[int, int]]:
        """(word index, start) of every occurrence in ``text`` (lower-case already)."""
        if isinstance(text, bytes):
            if self._bytes_ac is not None:
                return [
                    (i, start)
                    for i, start, _ in self._bytes_ac.find_matches_as_indexes(
                        text, overlapping=True
                    )
                ]
            return _find_all(text, self.bwords)
        if self._str_ac is not None:
            return [
                (i, start)
                for i, start, _ in self._str_ac.find_matches_as_indexes(text, overlapping=True)
            ]
        return _find_all(text, self.words)


def _find_all(text: Any, words: Sequence[Any]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i, w in enumerate(words):
        pos = text.find(w)
        while pos >= 0:
            out.append((i, pos))
            pos = text.find(w, pos + 1)
    return out


class Scanner:
    """Runs a set of detectors over text, cheaply when the text is clean.

    ``extra`` names more literals to look for (the redactor's secret-key hints); the
    result of :meth:`survey` says which of them occur.
    """

    __slots__ = ("_extra_ids", "_of_detector", "detectors", "extra", "needles")

    def __init__(self, detectors: Sequence[Detector], extra: Iterable[str] = ()) -> None:
        self.detectors = tuple(detectors)
        self.extra = tuple(extra)
        self.needles = Needles([t for d in self.detectors for t in d.triggers] + list(self.extra))
        index = {w: i for i, w in enumerate(self.needles.words)}
        self._of_detector = tuple(frozenset(index[t] for t in d.triggers) for d in self.detectors)
        self._extra_ids = frozenset(index[w] for w in self.extra)

    def survey(self, data: bytes) -> tuple[tuple[Detector, ...], list[int], bytes]:
        """For ``data`` (a whole event as JSON): the detectors whose trigger occurs and
        whose probe holds there (never missing a secret), the start positions of the
        ``extra`` literals, and the lower-cased ``data`` they refer to."""
        low = data.lower()
        by_word: dict[int, list[int]] = {}
        for i, start in self.needles.find(low):
            got = by_word.get(i)
            if got is None:
                by_word[i] = [start]
            else:
                got.append(start)
        active: list[Detector] = []
        for d, words in zip(self.detectors, self._of_detector, strict=True):
            if not d.triggers:
                shaped = data.translate(_DIGITS)
                if any(shape in shaped for shape in _CARD_SHAPES):
                    active.append(d)
                continue
            if not by_word:
                continue
            probe = d.probe
            for w in words:
                starts = by_word.get(w)
                if starts is None:
                    continue
                if probe is None or any(probe.match(low, p) is not None for p in starts):
                    active.append(d)
                    break
        extra = [p for w in self._extra_ids for p in by_word.get(w, ())]
        return tuple(active), extra, low

    def active(self, text: str | bytes) -> tuple[Detector, ...]:
        """The detectors that may find something in ``text``: a string as it is, or
        bytes of JSON (a whole event)."""
        if isinstance(text, str):
            # The probes read JSON: look at the string as JSON shows it.
            text = json.dumps(text).encode()
        return self.survey(text)[0]

    def candidates(self, texts: Sequence[str], detectors: Sequence[Detector]) -> set[int]:
        """Indexes of the ``texts`` that hold a trigger of ``detectors`` (a card-like
        digit run for those without triggers): the only ones worth searching."""
        if not texts or not detectors:
            return set()
        joined = "\x00".join(texts)
        ends: list[int] = []
        total = -1
        for t in texts:
            total += len(t) + 1
            ends.append(total)  # the separator after text i sits at ends[i]
        wanted = frozenset(w for d in detectors for w in self._word_ids(d))
        low = joined.lower()
        # Bytes are searched faster; their offsets are the characters' when all is ASCII.
        hits = self.needles.find(low.encode() if low.isascii() else low)
        out: set[int] = set()
        for w, start in hits:
            if w in wanted:
                out.add(bisect.bisect_left(ends, start))
        if any(not d.triggers for d in detectors):
            # Card numbers: where the digit shapes occur (offsets match when all is ASCII).
            if low.isascii():
                shaped = low.encode().translate(_DIGITS)
                for shape in _CARD_SHAPES:
                    pos = shaped.find(shape)
                    while pos >= 0:
                        out.add(bisect.bisect_left(ends, pos))
                        pos = shaped.find(shape, pos + 1)
            else:
                out.update(i for i, t in enumerate(texts) if _CARD_ANY.search(t))
        return out

    def _word_ids(self, d: Detector) -> frozenset[int]:
        return self._of_detector[self.detectors.index(d)]

    def redact(self, text: str, detectors: Sequence[Detector] | None = None) -> str:
        """``text`` with every secret the detectors find replaced by its placeholder."""
        dets = self.active(text) if detectors is None else detectors
        low: str | None = None
        for d in dets:
            if d.triggers:
                if low is None:
                    low = text.lower()
                if not any(t in low for t in d.triggers):
                    continue
            elif d.pattern.search(text) is None:
                continue
            new = d.redact(text)
            if new != text:
                text = new
                low = None
        return text


def probe_at_triggers(low: bytes, triggers: Sequence[bytes], probe: re.Pattern[bytes]) -> bool:
    """Whether ``probe`` matches where one of ``triggers`` starts in ``low``."""
    for t in triggers:
        i = low.find(t)
        while i >= 0:
            if probe.match(low, i) is not None:
                return True
            i = low.find(t, i + 1)
    return False
