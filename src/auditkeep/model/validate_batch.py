"""Validation of a whole batch: :func:`validate_event`'s checks, done a batch at a time where
one C call can do them for every event.

The append path validates every event; per event, the timestamp (a regex, the day, the time
of day, the range) and the IPv4 check were a third of validation's cost. Here the batch's
timestamps and addresses are matched by one regex each, a timestamp's time of day is
compared as text, and its day's validity and range are looked up. An event these quick checks do not clear goes
through :func:`validate_event`, which normalises it or names its error: the outcome for
every event is the one :func:`validate_event` gives.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Annotated, Any, Union

import msgspec

from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Event
from auditkeep.model.timefmt import in_range, parse_rfc3339
from auditkeep.model.validate import (
    _IPV4,
    DEFAULT_LIMITS,
    MAX_SAFE_INT,
    Limits,
    _walk,
    check_strings,
    validate_event,
)

# The UTC form most sources send (normalised, or but for a fraction's trailing zeros).
_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z"
_ONE_TIME = re.compile(_TIME)
_TIMES = re.compile(rf"{_TIME}(?:\n{_TIME})*")
_IPS = re.compile(rf"{_IPV4.pattern}(?:\n{_IPV4.pattern})*")

# "YYYY-MM-DD" -> whether that day is a valid date within the time bounds (the bounds are
# whole days: 1678-01-01 from its start, 2261-12-31 to its end).
_days: dict[str, bool] = {}


def _day_ok(day: str) -> bool:
    ok = _days.get(day)
    if ok is None:
        try:
            ok = in_range(parse_rfc3339(day + "T00:00:00Z"))
        except ValueError:
            ok = False
        if len(_days) > 65536:
            _days.clear()
        _days[day] = ok
    return ok


def _all_match(pattern: re.Pattern[str], texts: list[str]) -> bool:
    """Whether every text matches ``pattern`` (one line each: a text holding a newline makes
    more lines than texts, and fails)."""
    try:
        joined = "\n".join(texts)
    except TypeError:  # not all strings (an event built in Python)
        return False
    return joined.count("\n") == len(texts) - 1 and pattern.fullmatch(joined) is not None


def validate_batch(evs: Sequence[Event], limits: Limits = DEFAULT_LIMITS, tenant: str | None = None) -> list[bool]:
    """:func:`validate_event` for each event (normalised in place); returns whether each one
    needs exact canonicalisation. A :class:`ValidationError` names the event's position."""
    times = [ev.time for ev in evs]
    times_ok = None not in times and _all_match(_TIMES, times)  # type: ignore[arg-type]
    ips = [ev.actor.ip for ev in evs]
    ips_ok = None not in ips and _all_match(_IPS, ips)  # type: ignore[arg-type]
    meta_ok = _metadata_plain([ev.metadata for ev in evs if ev.metadata is not None], limits)
    days = _days
    exact: list[bool] = []
    for i, ev in enumerate(evs):
        try:
            t = ev.time
            ip = ev.actor.ip
            try:
                quick = not (
                    ev.received_at is not None
                    or ev.sealed is not None
                    or ev.submitter is not None
                    or (tenant is not None and ev.tenant is not None and ev.tenant != tenant)
                    or not (
                        t is None
                        or (
                            (times_ok or _ONE_TIME.fullmatch(t))
                            # digits, as the pattern matched: compared as text
                            and t[11:13] <= "23"
                            and t[14:16] <= "59"
                            and t[17:19] <= "59"
                            and (days.get(t[:10]) or _day_ok(t[:10]))
                        )
                    )
                    or not (ip is None or ips_ok or _IPV4.fullmatch(ip))
                )
            except TypeError:  # a value built in Python that is not a string
                quick = False
            if not quick:
                exact.append(validate_event(ev, limits, tenant).exact)
                continue
            check_strings(ev, limits)  # after the checks validate_event makes before it
            if t is not None and len(t) > 20 and t[-2] == "0":  # what format_rfc3339 gives
                frac = t[20:-1].rstrip("0")
                ev.time = f"{t[:19]}.{frac}Z" if frac else t[:19] + "Z"
            if ev.id is not None:
                ev.id = ev.id.lower()
            if ev.outcome is None:
                ev.outcome = "unknown"
            exact.append(ev.metadata is not None and not meta_ok and _walk(ev.metadata, "metadata", 1, limits))
        except ValidationError as exc:
            raise exc.at(i) from None
    return exact


_LEVELS = 3  # metadata nested deeper than this is walked (msgspec's types grow with the depth)
_plain = msgspec.json.Encoder()


@functools.lru_cache(maxsize=16)
def _metadata_type(limits: Limits) -> Any:
    """A list of metadata objects, as a msgspec type that accepts exactly what :func:`_walk`
    accepts without a float, up to :data:`_LEVELS` levels of nesting."""
    text = Annotated[str, msgspec.Meta(max_length=limits.max_string)]
    safe = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    value: Any = Union[text, safe, bool, None]  # noqa: UP007 (a runtime type expression)
    for _ in range(min(limits.max_depth, _LEVELS) - 1):
        value = Union[  # noqa: UP007
            text,
            safe,
            bool,
            None,
            Annotated[dict[text, value], msgspec.Meta(max_length=limits.max_keys)],
            Annotated[list[value], msgspec.Meta(max_length=limits.max_array)],
        ]
    return list[Annotated[dict[text, value], msgspec.Meta(max_length=limits.max_keys)]]


def _metadata_plain(metas: list[dict[str, Any]], limits: Limits) -> bool:
    """Whether every metadata object is within the limits, holds no float and only ASCII
    text (so no lone surrogate and no key outside the BMP): then none needs the walk. One
    conversion and one encoding of the batch's metadata, in C; False sends them to the walk."""
    if not metas:
        return True
    if limits.max_depth < 1:
        return False
    try:
        # equal: no tuple, set or other value the conversion would have turned into JSON
        return msgspec.convert(metas, _metadata_type(limits)) == metas and _plain.encode(metas).isascii()
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError, ValueError, RecursionError):
        return False
