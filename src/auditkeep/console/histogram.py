"""Events over time, stacked by outcome, as an inline SVG drawn on the server (no script)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from auditkeep.model.event import OUTCOMES
from auditkeep.model.timefmt import format_rfc3339

# colour-blind-safe (Okabe-Ito) fills, one per outcome, in stacking order
COLOURS = {"success": "#009E73", "failure": "#D55E00", "denied": "#CC79A7", "error": "#E69F00", "unknown": "#999999"}
_NICE_S = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000)
SEC = 1_000_000_000


@dataclass
class Bucket:
    start_ns: int
    end_ns: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Histogram:
    buckets: list[Bucket]
    step_ns: int
    counted: int  # events placed in buckets
    complete: bool  # False when the scan stopped at its cap

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for b in self.buckets:
            for k, v in b.counts.items():
                out[k] = out.get(k, 0) + v
        return out


def step_for(span_ns: int, target: int = 48) -> int:
    """A round bucket width giving at most about ``target`` buckets over ``span_ns``."""
    for s in _NICE_S:
        if span_ns / (s * SEC) <= target:
            return s * SEC
    return _NICE_S[-1] * SEC * max(1, -(-span_ns // (_NICE_S[-1] * SEC * target)))


def layout(since_ns: int, until_ns: int, target: int = 48) -> tuple[int, int, int]:
    """``(first, step, n)``: ``n`` buckets of a round width ``step`` starting at ``first`` (a
    multiple of the step) that cover [since, until)."""
    until_ns = max(until_ns, since_ns + 1)
    step = step_for(until_ns - since_ns, target)
    first = since_ns - since_ns % step
    return first, step, -(-(until_ns - first) // step)


def build(points: Iterable[tuple[int, str]], since_ns: int, until_ns: int, complete: bool = True, target: int = 48) -> Histogram:
    """Count ``(time_ns, outcome)`` points in [since, until) into round buckets aligned to the
    step (an event without an outcome counts as ``unknown``)."""
    first, step, n = layout(since_ns, until_ns, target)
    buckets = [Bucket(first + i * step, first + (i + 1) * step) for i in range(n)]
    counted = 0
    for t, outcome in points:
        if not since_ns <= t < until_ns:
            continue
        b = buckets[(t - first) // step]
        key = outcome if outcome in COLOURS else "unknown"
        b.counts[key] = b.counts.get(key, 0) + 1
        counted += 1
    return Histogram(buckets, step, counted, complete)


def from_counts(counts: Iterable[tuple[int, str, int]], first: int, step: int, n: int) -> Histogram:
    """The histogram of ``(bucket, outcome, count)`` rows counted over the buckets of
    :func:`layout` (rows outside them are ignored; an unknown outcome counts as ``unknown``)."""
    buckets = [Bucket(first + i * step, first + (i + 1) * step) for i in range(n)]
    counted = 0
    for i, outcome, c in counts:
        if not 0 <= i < n:
            continue
        key = outcome if outcome in COLOURS else "unknown"
        b = buckets[i]
        b.counts[key] = b.counts.get(key, 0) + c
        counted += c
    return Histogram(buckets, step, counted, True)


def svg(h: Histogram, width: int = 960, height: int = 180) -> Markup:
    """The chart: one stacked bar per bucket, each segment with a tooltip and data attributes
    (``data-start``, ``data-outcome``, ``data-count``) a test or a script can read."""
    pad_l, pad_b, pad_t = 40, 22, 8
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    peak = max((b.total for b in h.buckets), default=0) or 1
    bar_w = plot_w / max(1, len(h.buckets))
    parts: list[str] = []
    total = h.counted
    parts.append(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="hist-title" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="hist-title">Events over time by outcome: {total} events in '
        f'{len(h.buckets)} buckets of {_span(h.step_ns)}</title>'
    )
    # axis: zero line, peak label
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 4}" y2="{pad_t + plot_h}" stroke="#8c959f"/>')
    parts.append(f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end" font-size="11" fill="#57606a">{peak}</text>')
    parts.append(f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end" font-size="11" fill="#57606a">0</text>')
    for i, b in enumerate(h.buckets):
        x = pad_l + i * bar_w
        y: float = pad_t + plot_h
        start = format_rfc3339(b.start_ns)
        for outcome in COLOURS:
            c = b.counts.get(outcome, 0)
            if not c:
                continue
            bh = plot_h * c / peak
            y -= bh
            tip = escape(f"{start} (+{_span(h.step_ns)}): {c} {outcome}")
            parts.append(
                f'<rect x="{x + 0.5:.2f}" y="{y:.2f}" width="{max(bar_w - 1, 0.5):.2f}" height="{bh:.2f}" '
                f'fill="{COLOURS[outcome]}" data-start="{start}" data-outcome="{outcome}" data-count="{c}">'
                f"<title>{tip}</title></rect>"
            )
    for i in _label_positions(len(h.buckets)):
        b = h.buckets[i]
        label = format_rfc3339(b.start_ns)[5:16].replace("T", " ")
        parts.append(
            f'<text x="{pad_l + i * bar_w:.2f}" y="{height - 6}" font-size="11" fill="#57606a">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _label_positions(n: int, labels: int = 6) -> Sequence[int]:
    if n <= 0:
        return []
    every = max(1, n // labels)
    return range(0, n - every // 2, every) if n > 1 else [0]


def _span(ns: int) -> str:
    s = ns // SEC
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{s // size} {unit}"
    return f"{s} s"
