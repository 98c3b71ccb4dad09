"""The search page: filters in the URL, a histogram of the matches, keyset paging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console import histogram
from auditkeep.console.audit import record
from auditkeep.console.web import console, person, render
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import CATEGORIES, OUTCOMES
from auditkeep.model.timefmt import now_ns
from auditkeep.query.filters import Filters, parse_metadata, parse_time


class Timing:
    """Where a page's time went, as a ``Server-Timing`` header (shown by a browser's developer
    tools and read by benchmarks/bench_console.py): the store's queries, the audit event and
    the template, each in milliseconds."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + (time.perf_counter() - t) * 1000

    def header(self) -> str:
        return ", ".join(f"{k};dur={v:.1f}" for k, v in self.spent.items())


PRESETS: dict[str, int | None] = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None, "custom": None}
PRESET_LABELS = {"15m": "Last 15 minutes", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
                 "30d": "Last 30 days", "all": "All time", "custom": "Custom range"}  # fmt: skip
TEXT_FIELDS = ("actor", "action", "resource_type", "resource_id", "text")
PAGE_SIZE = 50
MAX_VALUE = 1000
MAX_META = 20
SEC = 1_000_000_000


@dataclass
class SearchForm:
    """The filters as typed, straight from the URL (so a search can be bookmarked and shared)."""

    range: str = "24h"
    since: str = ""
    until: str = ""
    values: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    category: str = ""
    meta: str = ""
    cursor: str = ""

    @classmethod
    def from_query(cls, q: QueryParams) -> SearchForm:
        def get(name: str) -> str:
            v = q.get(name, "").strip()
            if len(v) > MAX_VALUE:
                raise ValidationError(f"longer than {MAX_VALUE} characters", name)
            return v

        f = cls(
            range=get("range") or "24h",
            since=get("since"),
            until=get("until"),
            values={n: get(n) for n in TEXT_FIELDS},
            outcome=get("outcome"),
            category=get("category"),
            meta=q.get("meta", "")[: MAX_VALUE * 4],
            cursor=get("cursor"),
        )
        if f.range not in PRESETS:
            raise ValidationError(f"must be one of {', '.join(PRESETS)}", "range")
        if f.outcome and f.outcome not in OUTCOMES:
            raise ValidationError(f"must be one of {', '.join(OUTCOMES)}", "outcome")
        if f.category and f.category not in CATEGORIES:
            raise ValidationError(f"must be one of {', '.join(CATEGORIES)}", "category")
        return f

    def meta_pairs(self) -> list[tuple[str, str]]:
        lines = [ln.strip() for ln in self.meta.splitlines() if ln.strip()]
        if len(lines) > MAX_META:
            raise ValidationError(f"at most {MAX_META} path=value lines", "metadata")
        return parse_metadata(lines)

    def bounds(self, now: int) -> tuple[int | None, int | None]:
        """(since, until) in ns; None where open."""
        seconds = PRESETS[self.range]
        if seconds is not None:
            return now - seconds * SEC, now
        if self.range == "custom":
            since = parse_time(self.since, "since", now) if self.since else None
            until = parse_time(self.until, "until", now) if self.until else None
            if since is not None and until is not None and since >= until:
                raise ValidationError("the range's start must be before its end", "since")
            return since, until
        return None, None

    def filters(self, now: int) -> Filters:
        """The search this form asks for, its relative range resolved at ``now``."""
        since, until = self.bounds(now)
        values = {k: v or None for k, v in self.values.items()}
        return Filters.from_kwargs(
            {**values, "since": since, "until": until, "outcome": self.outcome or None,
             "category": self.category or None, "metadata": self.meta_pairs()}
        )  # fmt: skip

    def query(self, **override: str) -> str:
        """This search as a URL query (``override`` replaces fields, e.g. the cursor)."""
        items: dict[str, str] = {"range": self.range}
        if self.range == "custom":
            items.update(since=self.since, until=self.until)
        items.update({k: v for k, v in self.values.items() if v})
        items.update(outcome=self.outcome, category=self.category, meta=self.meta)
        items.update(override)
        return urlencode({k: v for k, v in items.items() if v})

    def recorded(self) -> dict[str, Any]:
        """The filters as the audit event records them."""
        out: dict[str, Any] = {"range": self.range}
        if self.range == "custom":
            out.update(since=self.since or None, until=self.until or None)
        out.update({k: v for k, v in self.values.items() if v})
        out.update(outcome=self.outcome or None, category=self.category or None, metadata=self.meta or None)
        return {k: v for k, v in out.items() if v is not None}


def count_matches(ledger: Ledger, tenant: str, filters: Filters) -> int:
    """How many events match, counted by the store: the histogram's aggregate over one bucket
    spanning the range (an open bound is the earliest or latest match); no event is read."""
    lo, hi = filters.since, filters.until
    if lo is None or hi is None:
        span = ledger.time_span(tenant, filters)
        if span is None:
            return 0
        lo = span[0] if lo is None else lo
        hi = span[1] + 1 if hi is None else hi
    if hi <= lo:
        return 0
    counts = ledger.count_by_time(tenant, replace(filters, since=lo, until=hi), origin_ns=lo, step_ns=hi - lo)
    return sum(c for _, _, c in counts)


def histogram_of(ledger: Ledger, tenant: str, filters: Filters, since: int | None, until: int | None) -> histogram.Histogram | None:
    """Every match counted into buckets by the store (an aggregate query: no event is read);
    an open bound is the earliest or latest match. None when a bound is open and nothing matches."""
    lo, hi = since, until
    if lo is None or hi is None:
        span = ledger.time_span(tenant, filters)
        if span is None:
            return None
        lo = span[0] if lo is None else lo
        hi = span[1] + 1 if hi is None else hi
    first, step, n = histogram.layout(lo, hi)
    bounded = replace(filters, since=lo, until=hi)  # exactly the span the buckets draw
    counts = ledger.count_by_time(tenant, bounded, origin_ns=first, step_ns=step)
    return histogram.from_counts(counts, first, step, n)


async def search_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    error: str | None = None
    form = SearchForm()
    page = None
    hist = None
    timing = Timing()
    try:
        form = SearchForm.from_query(request.query_params)
        now = now_ns()
        filters = form.filters(now)
        since, until = form.bounds(now)

        def run() -> tuple[Any, histogram.Histogram | None]:
            with timing.phase("page"):
                found = ctx.ledger.search(p.tenant, order="newest", cursor=form.cursor or None, limit=PAGE_SIZE, filters=filters)
            with timing.phase("histogram"):
                h = histogram_of(ctx.ledger, p.tenant, filters, since, until)
            with timing.phase("audit"):
                record(ctx, request, p.tenant, p.user.username, "auditkeep.console.search", category="data_access",
                       resource={"type": "events"},
                       metadata={"filters": form.recorded(), "cursor": form.cursor or None, "results": len(found.items)})
            return found, h

        page, hist = await run_in_threadpool(run)
    except ValidationError as exc:
        error = str(exc)
    with timing.phase("render"):
        resp = render(
            request, "search.html", 400 if error else 200,
            me=p, form=form, page=page, hist=hist, chart=histogram.svg(hist) if hist else None,
            colours=histogram.COLOURS, presets=PRESET_LABELS, outcomes=OUTCOMES, categories=CATEGORIES, error=error,
            text_fields=(("actor", "Actor"), ("action", "Action (user.* for a prefix)"), ("resource_type", "Resource type"),
                         ("resource_id", "Resource id"), ("text", "Text (every word)")),
        )  # fmt: skip
    resp.headers["Server-Timing"] = timing.header()
    return resp


routes = [Route("/search", search_page, methods=["GET"])]
