"""The printable HTML report inside a bundle: window, counts, a chart over time (inline SVG,
nothing fetched from elsewhere) and the integrity summary."""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from auditkeep.model.timefmt import format_rfc3339

if TYPE_CHECKING:
    from jinja2 import Template

    from auditkeep.evidence.build import BundleSummary

BINS = 48
TOP = 15


class _Counted(msgspec.Struct):
    """The fields of a leaf the report counts (the rest is skipped, not decoded)."""

    action: Any = None
    actor: Any = None
    outcome: Any = "unknown"


_counted = msgspec.json.Decoder(list[_Counted])


class Stats:
    """Counts of the window's events (those included in full) as they are added."""

    def __init__(self, since_ns: int, until_ns: int) -> None:
        self.since_ns = since_ns
        self.until_ns = until_ns
        self.width = max(1, -(-(until_ns - since_ns) // BINS))
        self.bins = [0] * BINS
        self.action: Counter[str] = Counter()
        self.actor: Counter[str] = Counter()
        self.outcome: Counter[str] = Counter()
        self.total = 0

    def add(self, ev: dict[str, Any], received_ns: int) -> None:
        self.total += 1
        self.action[str(ev.get("action"))] += 1
        actor = ev.get("actor")
        self.actor[str(actor.get("id")) if isinstance(actor, dict) else "?"] += 1
        self.outcome[str(ev.get("outcome", "unknown"))] += 1
        self.bins[min(BINS - 1, max(0, (received_ns - self.since_ns) // self.width))] += 1

    def add_leaves(self, leaves: Sequence[bytes], received_ns: list[int]) -> None:
        """Count many leaves at once (as :meth:`add` would one by one): one decode of the
        fields counted for the lot, C-level counting, and the time bins by bisection."""
        if not leaves:
            return
        evs = _counted.decode(b"[" + b",".join(leaves) + b"]")
        self.total += len(evs)
        self.action.update([str(e.action) for e in evs])
        self.actor.update([str(e.actor.get("id")) if isinstance(e.actor, dict) else "?" for e in evs])
        self.outcome.update([str(e.outcome) for e in evs])
        ns = sorted(received_ns)
        lo = 0
        for i in range(BINS - 1):  # bin i ends at since + (i + 1) * width; earlier times fall in bin 0
            hi = bisect_left(ns, self.since_ns + (i + 1) * self.width, lo)
            self.bins[i] += hi - lo
            lo = hi
        self.bins[BINS - 1] += len(ns) - lo


def _chart(stats: Stats) -> dict[str, Any]:
    """Bar geometry of the histogram (the template only draws it)."""
    w, h, pad = 720, 200, 30
    peak = max(stats.bins) or 1
    bar = (w - 2 * pad) / BINS
    bars = []
    for i, n in enumerate(stats.bins):
        height = (h - 2 * pad) * n / peak
        start = stats.since_ns + i * stats.width
        bars.append(
            {"x": round(pad + i * bar, 2), "y": round(h - pad - height, 2), "w": round(bar * 0.9, 2),
             "h": round(height, 2), "n": n, "label": format_rfc3339(start)}
        )  # fmt: skip
    return {"w": w, "h": h, "pad": pad, "peak": peak, "bars": bars}


@functools.cache
def _template() -> Template:
    """The report's template, loaded with Jinja2 when the first bundle is written (the server
    imports this module at start, through its OpenAPI description)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("auditkeep.evidence", "templates"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2")


def render_report(summary: BundleSummary, stats: Stats, filters: dict[str, Any]) -> str:
    return _template().render(
        s=summary,
        filters=sorted(filters.items()),
        total=stats.total,
        actions=stats.action.most_common(TOP),
        actors=stats.actor.most_common(TOP),
        outcomes=stats.outcome.most_common(),
        more_actions=max(0, len(stats.action) - TOP),
        more_actors=max(0, len(stats.actor) - TOP),
        chart=_chart(stats),
    )
