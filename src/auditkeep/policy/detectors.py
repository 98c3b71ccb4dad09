"""Detectors of secrets and personal data in free text.

Each detector is a regular expression with cheap literal *triggers* (lower case): text is
searched with the expression only when it contains a trigger, and all the triggers of all
detectors are found in one pass over a batch of strings, so clean text costs little. A
match is replaced by a typed placeholder such as ``[REDACTED:aws_access_key]``; only the
secret part of a match is replaced (``Bearer [REDACTED:bearer_token]``). Placeholders are
never matched again, so redaction is idempotent.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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

    ``triggers`` are lower-case literals, one of which every match contains (none: a
    card-like run of digits is the trigger). ``groups`` names the part of a match to
    replace (0: all of it; with alternatives, the first group that took part); ``check``
    can veto a match (the Luhn check of card numbers).
    """

    name: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...] = ()  # empty: a card-like run of digits is the trigger
    groups: tuple[int | str, ...] = (0,)
    check: Callable[[str], bool] | None = None
    # The pattern starts with a trigger: it is tried only where one occurs, not at every
    # position (a case-insensitive alternation cannot be searched fast otherwise).
    anchored: bool = False

    def redact(self, text: str) -> str:
        """``text`` with every match replaced by this detector's placeholder."""
        if not self.anchored or not text.isascii():
            return self.pattern.sub(self._replace, text)
        low = text.lower()  # for ASCII text the offsets stay the same
        starts = sorted({i for t in self.triggers for i in _occurrences(low, t)})
        if not starts:
            return text
        parts: list[str] = []
        done = 0
        match = self.pattern.match
        for i in starts:
            if i < done:
                continue
            m = match(text, i)
            if m is None:
                continue
            parts.append(text[done : m.start()])
            parts.append(self._replace(m))
            done = m.end()
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

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


def _occurrences(text: str, word: str) -> list[int]:
    out: list[int] = []
    i = text.find(word)
    while i >= 0:
        out.append(i)
        i = text.find(word, i + 1)
    return out


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
    ("-----begin",),
)
BEARER = Detector(
    "bearer_token",
    re.compile(rf"(?i)(?<![A-Za-z0-9])bearer\s+(?P<tok>{_NOT_REDACTED}[A-Za-z0-9\-._~+/]+=*)"),
    ("bearer",),
    ("tok",),
    anchored=True,
)
JWT = Detector(
    "jwt",
    re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("eyj",),
)
AWS_ACCESS_KEY = Detector(
    "aws_access_key",
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("akia", "asia", "abia", "acca"),
)
AWS_SECRET_KEY = Detector(
    "aws_secret_key",
    re.compile(
        r"(?i)secret[_.-]?(?:access)?[_.-]?key[\"']?\s*[:=]\s*[\"']?"
        r"(?P<key>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
    ),
    ("secret",),
    ("key",),
    anchored=True,
)
# Anchored at its trigger: the secret word itself, or "key" after api/access/secret/private.
_KEY_AFTER = "|".join(
    f"(?<={w}{sep})" for w in ("api", "access", "secret", "private") for sep in ("", "_", "-")
)
_WORD_AT_TRIGGER = rf"(?:pass(?:word|wd|phrase)?|pwd|secret|token|credentials?|(?:{_KEY_AFTER})key)"
PASSWORD = Detector(
    "password",
    re.compile(
        rf"(?i){_WORD_AT_TRIGGER}[\"']?\s*[:=]\s*"
        rf"(?:\"(?P<pw_dq>{_NOT_REDACTED}[^\"\\\n]+)\"|'(?P<pw_sq>{_NOT_REDACTED}[^'\\\n]+)'"
        rf"|(?P<pw_bare>{_NOT_REDACTED}[^\s\"'&;,}}\]]+))"
    ),
    KEY_TRIGGERS,
    ("pw_dq", "pw_sq", "pw_bare"),
    anchored=True,
)
URL_PASSWORD = Detector(
    "password",
    re.compile(rf"://[^/\s:@]*:(?P<upw>{_NOT_REDACTED}[^/\s@]+)@"),
    ("://",),
    ("upw",),
    anchored=True,
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
)

NATIONAL_ID = Detector(
    "national_id",
    # A US social security number as written (3-2-4 digits with dashes), without the
    # numbers never issued (area 000, 666, 9xx; group 00; serial 0000).
    re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])"),
    ("-",),
)
PII: tuple[Detector, ...] = (EMAIL, CARD_NUMBER, NATIONAL_ID)
"""Personal data in values, for masking query results (the gateways): not part of the
default redaction of events, which keeps ``national_id`` off."""

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
    """Runs a set of detectors over strings, cheaply when they are clean."""

    __slots__ = ("_by_word", "_trigless", "detectors", "needles")

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        self.needles = Needles(t for d in self.detectors for t in d.triggers)
        index = {w: i for i, w in enumerate(self.needles.words)}
        by_word: dict[int, list[Detector]] = {}
        for d in self.detectors:
            for t in d.triggers:
                by_word.setdefault(index[t], []).append(d)
        self._by_word = {w: tuple(ds) for w, ds in by_word.items()}
        self._trigless = tuple(d for d in self.detectors if not d.triggers)

    def candidates(self, texts: Sequence[str]) -> dict[int, set[Detector]]:
        """For each of ``texts`` that holds a trigger (or a card-like digit run), the
        detectors worth running on it. One pass over all of them joined."""
        out: dict[int, set[Detector]] = {}
        if not texts:
            return out
        joined = "\x00".join(texts)
        # ends[i] is where text i + 1 starts: bisect_right of a position gives its text.
        ends = list(itertools.accumulate([len(t) + 1 for t in texts]))
        low = joined.lower()
        ascii_ = low.isascii()
        # Bytes are searched faster; their offsets are the characters' when all is ASCII.
        blow = low.encode() if ascii_ else None
        by_word = self._by_word
        for w, start in self.needles.find(blow if blow is not None else low):
            i = bisect.bisect_right(ends, start)
            got = out.get(i)
            if got is None:
                out[i] = set(by_word[w])
            else:
                got.update(by_word[w])
        if self._trigless:
            if blow is not None:
                shaped = blow.translate(_DIGITS)
                if b"0000" in shaped:
                    for shape in _CARD_SHAPES:
                        pos = shaped.find(shape)
                        while pos >= 0:
                            out.setdefault(bisect.bisect_right(ends, pos), set()).update(
                                self._trigless
                            )
                            pos = shaped.find(shape, pos + 1)
            else:
                for i, t in enumerate(texts):
                    if _CARD_ANY.search(t):
                        out.setdefault(i, set()).update(self._trigless)
        return out

    def redact(self, text: str, detectors: Iterable[Detector] | None = None) -> str:
        """``text`` with every secret the detectors (all by default) find replaced by its
        placeholder. Detectors run in their fixed order."""
        chosen = (
            self.detectors
            if detectors is None
            else tuple(d for d in self.detectors if d in set(detectors))
        )
        low: str | None = None
        for d in chosen:
            if d.triggers:
                if low is None:
                    low = text.lower()
                if not any(t in low for t in d.triggers):
                    continue
            elif _CARD_ANY.search(text) is None:
                continue
            new = d.redact(text)
            if new != text:
                text = new
                low = None
        return text
