"""Search filters: parsed once from what people type (CLI options, HTTP query parameters)
or from the keyword arguments of ``search`` (:class:`FilterArgs`) into :class:`Filters`,
which the ledger's search takes and which matches an event in memory (the live tail)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, TypedDict, cast

from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Event, parse_submitter_filter
from auditkeep.model.timeargs import TimeArg, optional_time_arg, parse_time_arg
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.query.match import meta_value, scalar_equal, text_matches


class FilterArgs(TypedDict, total=False):
    """The search filters as keyword arguments (``search(action="user.*", since="1h")``): the
    one spelling of them that the embedded ledger's and the SDK clients' ``search`` take
    (``**filters: Unpack[FilterArgs]``). Times are nanoseconds since the epoch, an aware
    datetime, or text (RFC 3339, ``now``, ``15m``/``2h``/``7d`` ago)."""

    since: TimeArg
    until: TimeArg
    received_since: TimeArg
    received_until: TimeArg
    actor: str | None
    action: str | None
    resource_type: str | None
    resource_id: str | None
    outcome: str | None
    category: str | None
    text: str | None
    submitter: str | None
    metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None


FILTER_NAMES = tuple(FilterArgs.__annotations__)
"""Every filter's name, in the order of :class:`FilterArgs` (and of :class:`Filters`)."""
TIME_FIELDS = ("since", "until", "received_since", "received_until")
SEARCH_FIELDS = tuple(name for name in FILTER_NAMES if name != "metadata")
"""The filters given as one string each (``metadata`` is repeated ``path=value`` pairs)."""


def filter_args(given: Mapping[str, Any], func: str) -> FilterArgs:
    """``given`` keyword arguments checked to be filters, as Python checks a signature: an
    unknown name is a TypeError naming ``func``."""
    for name in given:
        if name not in FILTER_NAMES:
            raise TypeError(f"{func}() got an unexpected keyword argument {name!r}")
    return cast(FilterArgs, given)


def parse_time(value: str, field: str, now_ns: int | None = None) -> int:
    """An RFC 3339 time, ``now``, or a duration ago such as ``15m``, ``2h``, ``7d`` (the one
    parser of :mod:`auditkeep.model.timeargs`, within the stores' time bounds)."""
    return parse_time_arg(value, field, now_ns)


def parse_metadata(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``path=value`` pairs (the path is below ``metadata``; a leading ``metadata.`` is allowed)."""
    out: list[tuple[str, str]] = []
    for pair in pairs:
        path, sep, value = pair.partition("=")
        path = path.strip()
        if path.startswith("metadata."):
            path = path[len("metadata.") :]
        if not sep or not path or any(not p for p in path.split(".")):
            raise ValidationError(f"expected path=value, got {pair!r}", "metadata")
        out.append((path, value))
    return out


def search_kwargs(values: dict[str, Any], now_ns: int | None = None) -> dict[str, Any]:
    """Keyword arguments for :meth:`Ledger.search` from raw string values (None = unset)."""
    out: dict[str, Any] = {}
    for name in SEARCH_FIELDS:
        value = values.get(name)
        if value is None or value == "":
            continue
        if name in TIME_FIELDS:
            out[name] = parse_time(str(value), name, now_ns)
        elif name == "submitter":
            try:
                parse_submitter_filter(str(value))
            except ValueError as exc:
                raise ValidationError(str(exc), name) from None
            out[name] = str(value)
        else:
            out[name] = str(value)
    meta = values.get("metadata")
    if meta:
        out["metadata"] = parse_metadata(meta)
    return out


@dataclass(frozen=True)
class Filters:
    """One search's filters, combined with AND; None means unset. Times are
    nanoseconds since the epoch; ``action`` ending in ``*`` is a prefix; ``metadata`` holds
    ``(path below metadata, value)`` equalities."""

    since: int | None = None
    until: int | None = None
    received_since: int | None = None
    received_until: int | None = None
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    category: str | None = None
    text: str | None = None
    submitter: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, values: Mapping[str, Any], now_ns: int | None = None) -> Filters:
        """From raw strings as typed (``--since 15m``, ``?metadata=a.b=1``); ValidationError
        names the field that does not parse."""
        return cls.from_kwargs(search_kwargs(dict(values), now_ns))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Filters:
        """From keyword arguments of ``search`` (:class:`FilterArgs`); times in any form of
        :mod:`auditkeep.model.timeargs`. None (and an empty time) means unset."""
        unknown = sorted(set(kwargs) - set(FILTER_NAMES))
        if unknown:
            raise ValidationError(f"unknown filter {unknown[0]!r}", unknown[0])
        values = {k: v for k, v in kwargs.items() if v is not None}
        for name in TIME_FIELDS:
            if name in values:
                values[name] = optional_time_arg(values[name], name)
        if "metadata" in values:
            meta = values["metadata"]
            values["metadata"] = tuple((str(p), str(v)) for p, v in (meta.items() if isinstance(meta, Mapping) else meta))
        return cls(**{k: v for k, v in values.items() if v is not None})

    @classmethod
    def of(cls, filters: Filters | None, given: Mapping[str, Any], func: str) -> Filters:
        """What a ``search``-like method ``func`` was given: a parsed :class:`Filters`, or
        filter keywords (:class:`FilterArgs`) — not both."""
        if filters is None:
            return cls.from_kwargs(filter_args(given, func))
        if given:
            raise TypeError(f"{func}() takes filters= or filter keywords, not both")
        return filters

    def __bool__(self) -> bool:
        """Whether any filter is set (``Filters()`` selects every event)."""
        return self != _NONE

    def kwargs(self) -> dict[str, Any]:
        """The set filters as keyword arguments of :meth:`LogReader.search`."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, ())}
        if self.metadata:
            out["metadata"] = list(self.metadata)
        return out

    @cached_property
    def _submitter(self) -> tuple[str, str | None] | None:
        return None if self.submitter is None else parse_submitter_filter(self.submitter)

    def matches(self, ev: Event) -> bool:
        """Whether ``ev`` passes every filter, with the meaning the stores' search gives them."""
        if self.actor is not None and ev.actor.id != self.actor:
            return False
        if self.action is not None:
            if self.action.endswith("*"):
                if not ev.action.startswith(self.action[:-1]):
                    return False
            elif ev.action != self.action:
                return False
        r = ev.resource
        if self.resource_type is not None and (r is None or r.type != self.resource_type):
            return False
        if self.resource_id is not None and (r is None or r.id != self.resource_id):
            return False
        if self.outcome is not None and ev.outcome != self.outcome:
            return False
        if self.category is not None and ev.category != self.category:
            return False
        if not _within(ev.time or ev.received_at, self.since, self.until):
            return False
        if not _within(ev.received_at, self.received_since, self.received_until):
            return False
        if self._submitter is not None:
            kind, who = self._submitter
            sub = ev.submitter
            if sub is None or sub.kind != kind or (who is not None and sub.id != who):
                return False
        for path, value in self.metadata:
            if not scalar_equal(meta_value(ev.metadata, path), value):
                return False
        return not (self.text and not text_matches(self.text, ev))


_NONE = Filters()


def _within(stamp: str | None, since: int | None, until: int | None) -> bool:
    if since is None and until is None:
        return True
    t = parse_rfc3339(stamp or "")
    return not ((since is not None and t < since) or (until is not None and t >= until))
