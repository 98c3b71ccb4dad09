"""The stages of one request (RequestReceived, ResponseStarted, ResponseComplete, Panic)
merged into one event."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Literal

from auditkeep.model import Event
from auditkeep.sources.kubernetes.vocabulary import FINAL_STAGES

# --------------------------------------------------------------------------- stages


class StageMerger:
    """Folds the stages of one request (one ``auditID``) into one audit fact.

    ``mode="final"`` keeps only ResponseComplete or Panic; an earlier stage is held until
    its final stage arrives and is released on its own (marked ``final_stage_missing``)
    when none comes within ``timeout`` seconds (long watches, a lost event). ``mode="all"``
    passes every stage through. Events without an auditID or a stage always pass through.
    """

    def __init__(
        self,
        mode: Literal["final", "all"] = "final",
        timeout: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 100_000,
        remember: int = 100_000,
    ) -> None:
        if mode not in ("final", "all"):
            raise ValueError("mode must be 'final' or 'all'")
        self.mode = mode
        self.timeout = timeout
        self.clock = clock
        self.max_pending = max_pending
        self.remember = remember
        self._pending: OrderedDict[str, tuple[float, Event]] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, events: Iterable[Event]) -> list[Event]:
        """Feed mapped events; return those ready to keep (plus any that timed out)."""
        if self.mode == "all":
            return list(events)
        now = self.clock()
        out: list[Event] = []
        for ev in events:
            key = _merge_key(ev)
            stage = _stage(ev)
            if key is None or stage is None:
                out.append(ev)  # nothing to merge it with
                continue
            if stage in FINAL_STAGES or _failed_authentication(ev):
                self._pending.pop(key, None)
                self._done[key] = None
                if len(self._done) > self.remember:
                    self._done.popitem(last=False)
                out.append(ev)
            elif key in self._done:
                continue  # an earlier stage arriving after its final one adds nothing
            else:
                self._pending.pop(key, None)  # a later stage replaces the earlier one
                self._pending[key] = (now + self.timeout, ev)
                if len(self._pending) > self.max_pending:
                    _, (_, oldest) = self._pending.popitem(last=False)
                    out.append(_incomplete(oldest))
        out.extend(self.expire(now))
        return out

    def expire(self, now: float | None = None) -> list[Event]:
        """Release the held events whose final stage did not come in time."""
        if now is None:
            now = self.clock()
        out: list[Event] = []
        while self._pending:
            key, (deadline, ev) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[key]
            out.append(_incomplete(ev))
        return out

    def pending(self) -> dict[str, Event]:
        """The held events by merge key (the caller keeps them durable: see sources.service)."""
        return {key: ev for key, (_, ev) in self._pending.items()}

    def hold(self, key: str, ev: Event) -> None:
        """Hold ``ev`` again (after a restart), with a fresh timeout."""
        self._pending[key] = (self.clock() + self.timeout, ev)

    def drain(self) -> list[Event]:
        """Release everything held (at shutdown)."""
        out = [_incomplete(ev) for _, ev in self._pending.values()]
        self._pending.clear()
        return out


def _merge_key(ev: Event) -> str | None:
    if ev.source is None or not ev.source.request_id:
        return None
    return f"{ev.source.host or ''}\x1f{ev.source.request_id}"


def _stage(ev: Event) -> str | None:
    k8s = ev.metadata.get("k8s") if ev.metadata else None
    return k8s.get("stage") if isinstance(k8s, dict) else None


def _failed_authentication(ev: Event) -> bool:
    """A 401 is recorded at ResponseStarted and never gets a ResponseComplete: the request
    stopped at authentication, before the handler that writes the later stages."""
    k8s = ev.metadata.get("k8s") if ev.metadata else None
    status = k8s.get("responseStatus") if isinstance(k8s, dict) else None
    return isinstance(status, dict) and status.get("code") == 401


def _incomplete(ev: Event) -> Event:
    if ev.metadata is not None:
        ev.metadata["final_stage_missing"] = True
    return ev
