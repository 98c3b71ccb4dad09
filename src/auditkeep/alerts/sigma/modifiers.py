"""Sigma value modifiers: ``field|mod1|mod2: values`` compiled into a test of one field.

Supported: ``contains``, ``startswith``, ``endswith``, ``all``, ``re`` (with ``i``, ``m``,
``s``), ``cidr``, ``exists``, ``gt``/``gte``/``lt``/``lte``, ``neq``, ``cased``,
``windash``, ``base64``, ``base64offset``, ``wide``/``utf16le``/``utf16be``/``utf16``
(only followed by a base64 modifier: encoded bytes cannot be compared with text) and
``fieldref``. Refused: ``expand`` (placeholders need a lookup this engine does not have),
the time-part modifiers and anything unknown.

A field value that is a list matches when any element does; a mapping is searched through
its leaf values; a missing field matches only ``null`` (or ``exists: false``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.fields import MISSING, Getter, to_number, to_text
from auditkeep.alerts.sigma import strings as ss
from auditkeep.alerts.sigma.strings import MULTI, CharClass, Part

KNOWN = frozenset(
    {
        "contains", "startswith", "endswith", "all", "re", "i", "m", "s", "cidr", "exists",
        "gt", "gte", "lt", "lte", "neq", "cased", "windash", "base64", "base64offset",
        "wide", "utf16le", "utf16be", "utf16", "fieldref",
    }
)
REFUSED = {
    "expand": "placeholders ('expand') need a lookup table, which this engine does not have",
    "minute": "time-part modifiers are not supported",
    "hour": "time-part modifiers are not supported",
    "day": "time-part modifiers are not supported",
    "week": "time-part modifiers are not supported",
    "month": "time-part modifiers are not supported",
    "year": "time-part modifiers are not supported",
}
_TRANSFORMS = ("contains", "startswith", "endswith", "windash", "base64", "base64offset", "wide", "utf16le", "utf16be", "utf16")


def texts(value: Any) -> Iterator[str]:
    """Every text in a field value: strings, numbers, booleans; lists and mappings walked."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from texts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts(v)
    else:
        t = to_text(value)
        if t is not None:
            yield t


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None


@dataclass
class FieldTest:
    """A compiled ``field|mods: values``. ``exact`` holds the lower-cased plain values when
    the test is a case-insensitive equality (usable as an index)."""

    field: str
    test: Callable[[Any], bool]
    exact: frozenset[str] | None = None


_B64_SKIP_START = (0, 2, 3)  # characters that depend on bytes before the value
_B64_SKIP_END = (0, 3, 2)  # characters that depend on bytes after it, by length mod 3


def base64_offsets(data: bytes) -> list[str]:
    """The three base64 spellings of ``data`` at byte offsets 0, 1 and 2 inside a longer
    encoded text, each cut to the characters that do not depend on its neighbours."""
    out = []
    for shift in range(3):
        padded = base64.b64encode(b"\x00" * shift + data).decode("ascii")
        end = _B64_SKIP_END[(shift + len(data)) % 3]
        out.append(padded[_B64_SKIP_START[shift] : len(padded) - end])
    return out


def compile_field(name: str, mods: list[str], raw: Any, getter: Getter, ref_getter: Callable[[str], Getter]) -> FieldTest:
    """Compile one field test; ``RuleError`` naming the field for anything unsupported."""
    for m in mods:
        if m in REFUSED:
            raise RuleError(f"field {name!r}: {REFUSED[m]}")
        if m not in KNOWN:
            raise RuleError(f"field {name!r}: unknown modifier {m!r}")
    values = list(raw) if isinstance(raw, list) else [raw]
    if not values:
        raise RuleError(f"field {name!r}: an empty list of values")
    for v in values:
        if isinstance(v, (dict, list)):
            raise RuleError(f"field {name!r}: values must be scalars")
    modset = set(mods)
    match_all = "all" in modset
    cased = "cased" in modset
    negate = "neq" in modset

    if "exists" in modset:
        if modset - {"exists"}:
            raise RuleError(f"field {name!r}: 'exists' cannot be combined with other modifiers")
        if len(values) != 1 or not isinstance(values[0], bool):
            raise RuleError(f"field {name!r}: 'exists' takes true or false")
        want = values[0]
        return FieldTest(name, lambda ev: _present(getter(ev)) is want)

    if "fieldref" in modset:
        extra = modset - {"fieldref", "neq", "cased", "all"}
        if extra:
            raise RuleError(f"field {name!r}: 'fieldref' cannot be combined with {sorted(extra)}")
        refs = []
        for v in values:
            if not isinstance(v, str):
                raise RuleError(f"field {name!r}: 'fieldref' takes field names")
            refs.append(ref_getter(v))

        def same(ev: Any, ref: Getter) -> bool:
            a = {t if cased else t.lower() for t in texts(getter(ev))}
            b = {t if cased else t.lower() for t in texts(ref(ev))}
            return bool(a & b)

        if match_all:
            return FieldTest(name, lambda ev: all(same(ev, r) for r in refs) ^ negate)
        return FieldTest(name, lambda ev: any(same(ev, r) for r in refs) ^ negate)

    per_value: list[Callable[[Any], bool]] = []
    exact: frozenset[str] | None = None
    numeric = [m for m in ("gt", "gte", "lt", "lte") if m in modset]
    if numeric:
        if len(numeric) > 1 or modset - {numeric[0], "all"}:
            raise RuleError(f"field {name!r}: '{numeric[0]}' cannot be combined with other modifiers")
        op = numeric[0]
        for v in values:
            num = to_number(v)
            if num is None:
                raise RuleError(f"field {name!r}: '{op}' needs numbers, got {v!r}")
            per_value.append(_numeric(getter, op, num))
    elif "cidr" in modset:
        if modset - {"cidr", "all", "neq"}:
            raise RuleError(f"field {name!r}: 'cidr' cannot be combined with {sorted(modset - {'cidr'})}")
        for v in values:
            try:
                net = ipaddress.ip_network(str(v), strict=False)
            except ValueError as exc:
                raise RuleError(f"field {name!r}: invalid CIDR {v!r}: {exc}") from None
            per_value.append(_cidr(getter, net))
    elif "re" in modset:
        if modset - {"re", "i", "m", "s", "all", "neq", "cased"}:
            raise RuleError(f"field {name!r}: 're' cannot be combined with {sorted(modset - {'re', 'i', 'm', 's', 'all'})}")
        flags = (re.IGNORECASE if "i" in modset else 0) | (re.MULTILINE if "m" in modset else 0) | (re.DOTALL if "s" in modset else 0)
        for v in values:
            if not isinstance(v, str):
                raise RuleError(f"field {name!r}: 're' takes strings")
            try:
                rx = re.compile(v, flags)
            except re.error as exc:
                raise RuleError(f"field {name!r}: invalid regular expression {v!r}: {exc}") from None
            per_value.append(_regex(getter, rx))
    else:
        if modset & {"i", "m", "s"}:
            raise RuleError(f"field {name!r}: 'i', 'm' and 's' only apply to 're'")
        plain_eq = True
        lowered: set[str] = set()
        for v in values:
            if v is None:
                if modset & set(_TRANSFORMS):
                    raise RuleError(f"field {name!r}: null cannot be transformed by {mods}")
                per_value.append(lambda ev: not _present(getter(ev)))
                plain_eq = False
                continue
            alternatives, encoded = _transform(name, mods, v)
            tests = [ss.compile_pattern(a, cased or encoded) for a in alternatives]
            per_value.append(_text_any(getter, tests, alternatives))
            if len(alternatives) == 1 and ss.is_plain(alternatives[0]) and not cased and not encoded:
                lowered.add(ss.literal(alternatives[0]).lower())
            else:
                plain_eq = False
        if plain_eq and not negate and lowered and (not match_all or len(values) == 1):
            exact = frozenset(lowered)

    if len(per_value) == 1:
        combined = per_value[0]
    elif match_all:
        tests_t = tuple(per_value)
        combined = lambda ev: all(t(ev) for t in tests_t)  # noqa: E731
    else:
        tests_t = tuple(per_value)
        combined = lambda ev: any(t(ev) for t in tests_t)  # noqa: E731
    if negate:
        inner = combined
        return FieldTest(name, lambda ev: not inner(ev))
    return FieldTest(name, combined, exact)


def _transform(name: str, mods: list[str], v: Any) -> tuple[list[list[Part]], bool]:
    """Apply the transformation modifiers in order; the alternative patterns (any may
    match) and whether they are encodings (always compared case-sensitively)."""
    text = v if isinstance(v, str) else (to_text(v) or "")
    alts: list[list[Part] | bytes] = [ss.parse(text) if isinstance(v, str) else [text]]
    encoded = False
    for m in mods:
        if m not in _TRANSFORMS:
            continue
        nxt: list[list[Part] | bytes] = []
        for a in alts:
            if m in ("contains", "startswith", "endswith"):
                if isinstance(a, bytes):
                    raise RuleError(f"field {name!r}: '{m}' after a UTF-16 modifier needs base64 in between")
                parts = list(a)
                if m in ("contains", "endswith") and (not parts or parts[0] is not MULTI):
                    parts.insert(0, MULTI)
                if m in ("contains", "startswith") and (not parts or parts[-1] is not MULTI):
                    parts.append(MULTI)
                nxt.append(ss.normalise(parts))
            elif m == "windash":
                if isinstance(a, bytes):
                    raise RuleError(f"field {name!r}: 'windash' applies to text")
                nxt.append(_windash(a))
            elif m in ("wide", "utf16le", "utf16be", "utf16"):
                if isinstance(a, bytes) or not ss.is_plain(a):
                    raise RuleError(f"field {name!r}: '{m}' needs a plain value without wildcards")
                s = ss.literal(a)
                codec = {"wide": "utf-16-le", "utf16le": "utf-16-le", "utf16be": "utf-16-be", "utf16": "utf-16"}[m]
                data = s.encode(codec)
                if m == "utf16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
                    data = b"\xff\xfe" + s.encode("utf-16-le")
                nxt.append(data)
            else:  # base64, base64offset
                if isinstance(a, bytes):
                    data = a
                elif ss.is_plain(a):
                    data = ss.literal(a).encode("utf-8")
                else:
                    raise RuleError(f"field {name!r}: '{m}' cannot encode wildcards")
                encoded = True
                if m == "base64":
                    nxt.append([base64.b64encode(data).decode("ascii")])
                else:
                    nxt.extend([[t] for t in base64_offsets(data)])
        alts = nxt
    out: list[list[Part]] = []
    for a in alts:
        if isinstance(a, bytes):
            raise RuleError(f"field {name!r}: a UTF-16 modifier must be followed by 'base64' or 'base64offset'")
        out.append(a)
    return out, encoded


def _windash(parts: list[Part]) -> list[Part]:
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str):
            buf = ""
            for c in p:
                if c in ss.DASHES:
                    if buf:
                        out.append(buf)
                        buf = ""
                    out.append(CharClass(ss.DASHES))
                else:
                    buf += c
            if buf:
                out.append(buf)
        else:
            out.append(p)
    return out


def _text_any(getter: Getter, tests: list[ss.TextTest], alternatives: list[list[Part]]) -> Callable[[Any], bool]:
    any_value = len(alternatives) == 1 and alternatives[0] == [MULTI]
    if len(tests) == 1:
        t0 = tests[0]

        def test1(ev: Any) -> bool:
            v = getter(ev)
            if isinstance(v, str):
                return t0(v)
            if v is MISSING or v is None:
                return False
            if any_value:
                return True
            return any(t0(t) for t in texts(v))

        return test1

    def test(ev: Any) -> bool:
        v = getter(ev)
        if v is MISSING or v is None:
            return False
        if any_value:
            return True
        return any(t(x) for x in texts(v) for t in tests)

    return test


def _numeric(getter: Getter, op: str, num: float) -> Callable[[Any], bool]:
    def test(ev: Any) -> bool:
        v = getter(ev)
        for x in v if isinstance(v, list) else (v,):
            n = to_number(x)
            if n is None:
                continue
            if (op == "gt" and n > num) or (op == "gte" and n >= num) or (op == "lt" and n < num) or (op == "lte" and n <= num):
                return True
        return False

    return test


def _cidr(getter: Getter, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Callable[[Any], bool]:
    def test(ev: Any) -> bool:
        for t in texts(getter(ev)):
            try:
                ip = ipaddress.ip_address(t.strip("[]"))
            except ValueError:
                continue
            if ip.version == net.version and ip in net:
                return True
        return False

    return test


def _regex(getter: Getter, rx: re.Pattern[str]) -> Callable[[Any], bool]:
    def test(ev: Any) -> bool:
        return any(rx.search(t) is not None for t in texts(getter(ev)))

    return test
