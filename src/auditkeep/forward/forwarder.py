"""The forwarder: each ``[[forward]]`` target follows every tenant's committed log by a
durable cursor of its own (``Store.cursor("forward:<name>", tenant_id)``).

A target runs in a thread of its own, so a slow or dead receiver holds up only itself: the
log is read after commit, never inside the append, so ingest never waits for a receiver
(back-pressure is the target's lag). A batch is read from the cursor, filtered, formatted and
sent; the cursor moves past it only once the receiver has taken it. A failed send is retried
with backoff, for ever: nothing is skipped. After a restart or ``kill -9`` the target
resumes at its cursor, so the receiver may see a batch twice (at least once) and can drop
repeats by the event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from auditkeep.config import ForwardSettings
from auditkeep.errors import UserError
from auditkeep.export.formats import Formatter
from auditkeep.forward.sinks import Item, Sink, SinkError, build_sink
from auditkeep.ledger.reader import LogReader, Record
from auditkeep.model.event import CATEGORIES, OUTCOMES, Submitter
from auditkeep.store.base import Head

if TYPE_CHECKING:
    from auditkeep.ledger.ledger import Ledger

log = logging.getLogger(__name__)

FORMATS = {"native": "jsonl", "ocsf": "ocsf", "cef": "cef"}
TYPES = ("file", "splunk_hec", "webhook", "syslog", "nats")


def cursor_name(target: str) -> str:
    return f"forward:{target}"


RESET_ACTION = "auditkeep.forward.reset"


class ResetRefused(UserError, ValueError):
    """A cursor reset that cannot be done as asked (nothing was changed)."""


def reset_cursors(
    ledger: Ledger,
    target: ForwardSettings,
    to: int | Literal["start", "end"],
    actor: dict[str, str],
    submitter: Submitter,
    tenants: Sequence[str] = (),
) -> list[tuple[str, int, int]]:
    """Move ``target``'s durable cursor in each tenant it follows (or only ``tenants``) to
    ``to``: a log index (entries below it count as taken), ``"start"`` (send everything
    again) or ``"end"`` (skip what is committed now). Done under the store's forwarder
    lease, so no running forwarder holds the old position in memory; each tenant's change
    is recorded in its log as an ``auditkeep.forward.reset`` event, which, committed after
    the new position, the target then sends like any other. Returns (tenant, old, new)."""
    from auditkeep.forward.service import LEASE  # the service imports this module

    lease = ledger.store.lease(LEASE)
    if lease is None:
        raise ResetRefused("a running forwarder holds this store's forwarder lease: stop `auditkeep serve` (every server on this store) first")
    try:
        followed = [h for h in ledger.tenants() if not target.tenants or h.tenant in target.tenants]
        if tenants:
            unknown = sorted(set(tenants) - {h.tenant for h in followed})
            if unknown:
                raise ResetRefused(f"target {target.name!r} follows no log of tenant {unknown[0]!r}")
            followed = [h for h in followed if h.tenant in tenants]
        name = cursor_name(target.name)
        plan: list[tuple[Head, int, int]] = []
        for head in followed:
            new = 0 if to == "start" else head.size if to == "end" else to
            if new > head.size:
                raise ResetRefused(f"index {new} is beyond the log of tenant {head.tenant!r} ({head.size} entries)")
            plan.append((head, ledger.store.cursor(name, head.tenant_id)[0], new))
        done: list[tuple[str, int, int]] = []
        for head, old, new in plan:
            ledger.store.set_cursor(name, head.tenant_id, new)
            event = {
                "actor": actor,
                "action": RESET_ACTION,
                "category": "admin",
                "outcome": "success",
                "resource": {"type": "forward_target", "id": target.name},
                "metadata": {"from": old, "to": new, "requested": str(to)},
            }
            ledger.append_own([event], head.tenant, submitter)
            done.append((head.tenant, old, new))
        return done
    finally:
        lease.release()


def check_targets(targets: list[ForwardSettings]) -> None:
    """Refuse a bad ``[[forward]]`` list before anything starts (ValueError naming it)."""
    seen: set[str] = set()
    for t in targets:
        where = f"forward {t.name!r}"
        if not t.name or len(t.name) > 64 or not all(c.isalnum() or c in "-_." for c in t.name):
            raise ValueError(f"{where}: name must be 1-64 letters, digits, '-', '_' or '.'")
        if t.name in seen:
            raise ValueError(f"{where}: two targets have this name")
        seen.add(t.name)
        if t.type not in TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(TYPES)}")
        if t.format not in FORMATS:
            raise ValueError(f"{where}: format must be native, ocsf or cef")
        if not 1 <= t.batch <= 10_000:
            raise ValueError(f"{where}: batch must be between 1 and 10000")
        for bad in set(t.categories) - set(CATEGORIES):
            raise ValueError(f"{where}: unknown category {bad!r}")
        for bad in set(t.outcomes) - set(OUTCOMES):
            raise ValueError(f"{where}: unknown outcome {bad!r}")
        if t.max_request_bytes < 1024:
            raise ValueError(f"{where}: max_request_bytes must be at least 1024")
        if t.url and t.url.startswith("http://") and not _loopback_url(t.url):
            log.warning("%s: %s sends events (and its token or signature) without TLS", where, t.url)
        if t.max_bytes < 1024 or t.keep < 0 or t.timeout <= 0 or t.retry_max_delay <= 0 or t.confirm_after < 0:
            raise ValueError(f"{where}: max_bytes >= 1024, keep >= 0, timeout, retry_max_delay > 0, confirm_after >= 0")


def _split(items: list[Item], limit: int) -> Iterator[list[Item]]:
    """Consecutive parts of ``items`` whose bodies add up to at most ``limit`` bytes (an
    event larger than that goes alone)."""
    part: list[Item] = []
    size = 0
    for item in items:
        n = len(item[1]) + 1
        if part and size + n > limit:
            yield part
            part, size = [], 0
        part.append(item)
        size += n
    if part:
        yield part


def _loopback_url(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Matcher:
    """A target's filters (all must hold; an empty list allows everything)."""

    def __init__(self, t: ForwardSettings) -> None:
        self.exact = {a for a in t.actions if not a.endswith("*")}
        self.prefixes = tuple(a[:-1] for a in t.actions if a.endswith("*"))
        self.any_action = not t.actions
        self.categories = set(t.categories)
        self.outcomes = set(t.outcomes)

    def __call__(self, rec: Record) -> bool:
        ev = rec.event
        if not self.any_action and ev.action not in self.exact and not ev.action.startswith(self.prefixes):
            return False
        if self.categories and ev.category not in self.categories:
            return False
        return not self.outcomes or ev.outcome in self.outcomes


@dataclass
class TargetStats:
    sent: int = 0  # events the receiver took since start
    failures: int = 0  # failed sends since start
    lag: int = 0  # committed entries the target has not passed yet (all its tenants)
    last_error: str | None = None
    positions: dict[str, int] = field(default_factory=dict)


class Target:
    """One target's loop, in a thread of its own."""

    def __init__(
        self,
        settings: ForwardSettings,
        reader: LogReader,
        sink_factory: Callable[[ForwardSettings], Sink] = build_sink,
        poll_interval: float = 0.5,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.store = reader.store
        self.name = cursor_name(settings.name)
        self.formatter = Formatter(FORMATS[settings.format])
        self.match = Matcher(settings)
        self.stats = TargetStats()
        self.poll_interval = poll_interval
        self._sink_factory = sink_factory
        self._sink: Sink | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._sent: dict[int, int] = {}  # tenant id -> position sent up to (maybe not yet confirmed)
        self._durable: dict[int, int] = {}  # tenant id -> saved cursor
        self._pending: deque[tuple[int, int, float, int]] = deque()  # (tenant id, end, sent at, connection)
        self._backoff = 0.0

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"auditkeep-forward-{self.settings.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Close the sink (after :meth:`step` calls made without :meth:`start`)."""
        self._close_sink()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    moved = self.step()
                except (SinkError, OSError, ValueError) as exc:
                    self._failed(exc)
                    continue
                except Exception as exc:  # the store may be unreachable: keep trying, never spin
                    log.exception("forward %s: step failed", self.settings.name)
                    self._failed(exc)
                    continue
                self._backoff = 0.0
                if not moved:
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()
        finally:
            self._close_sink()

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(exc)[:500]
        # resend everything not confirmed: the receiver may have lost it
        self._sent = dict(self._durable)
        self._pending.clear()
        self._close_sink()
        try:
            self._update_lag()
        except Exception:  # the store is down too: the lag is reported at the next pass
            log.debug("forward %s: lag not updated", self.settings.name, exc_info=True)
        self._backoff = min(self.settings.retry_max_delay, self._backoff * 2 or 0.2)
        log.warning("forward %s: %s; retrying in %.1fs", self.settings.name, self.stats.last_error, self._backoff)
        self._stop.wait(self._backoff)

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:  # closing a broken connection: nothing more to do
                log.debug("forward %s: close failed", self.settings.name, exc_info=True)

    # one pass ----------------------------------------------------------------------------

    def _position(self, head: Head) -> int:
        tid = head.tenant_id
        if tid not in self._durable:
            self._durable[tid] = self.store.cursor(self.name, tid)[0]
            self._sent.setdefault(tid, self._durable[tid])
        return self._sent.setdefault(tid, self._durable[tid])

    def _heads(self) -> list[Head]:
        tenants = set(self.settings.tenants)
        return [h for h in self.reader.tenants() if not tenants or h.tenant in tenants]

    def _update_lag(self) -> None:
        lag = 0
        for head in self._heads():
            self._position(head)
            lag += head.size - self._durable[head.tenant_id]
            self.stats.positions[head.tenant] = self._durable[head.tenant_id]
        self.stats.lag = lag

    def step(self) -> int:
        """Send what was committed since the last pass (a batch per tenant), confirm what can
        be; the number of log entries passed."""
        if self._sink is None:
            self._sink = self._sink_factory(self.settings)
        sink = self._sink
        self._confirm(sink)
        moved = 0
        heads = self._heads()
        for head in heads:
            pos = self._position(head)
            if pos < head.size:
                end = min(head.size, pos + self.settings.batch)
                records = self.reader.records(pos, end, head.tenant, checked=False)
                items: list[Item] = [(r, self.formatter.one(r)) for r in records if self.match(r)]
                for part in _split(items, self.settings.max_request_bytes):
                    sink.send(part)
                    self.stats.sent += len(part)
                self._sent[head.tenant_id] = end
                moved += end - pos
                if sink.deferred:
                    self._pending.append((head.tenant_id, end, time.monotonic(), sink.generation()))
                else:
                    self._save(head.tenant_id, end)
        self.stats.lag = sum(h.size - self._durable[h.tenant_id] for h in heads)
        self.stats.positions.update((h.tenant, self._durable[h.tenant_id]) for h in heads)
        if self._pending and not moved:
            moved = 0  # waiting for confirmation: poll again soon
            self._stop.wait(min(self.poll_interval, 0.2))
        return moved

    def _confirm(self, sink: Sink) -> None:
        while self._pending:
            tid, end, sent_at, gen = self._pending[0]
            if not sink.confirmed(sent_at, gen):
                return
            self._pending.popleft()
            self._save(tid, end)

    def _save(self, tid: int, end: int) -> None:
        if end > self._durable.get(tid, 0):
            self.store.set_cursor(self.name, tid, end)
            self._durable[tid] = end
