"""Which queued batches the writer takes together (one transaction, one fsync).

A group is answered as one: each of its batches resolves only once the whole group is
sequenced and durable. Taken in arrival order, a small batch (an interactive client's 100
events) that queued behind a large one (a bulk sender's 1,000) waited for the large one's
sequencing as well as for the group being committed when it arrived: the tail of small
requests' latency under bulk load (benchmarks/RESULTS.md, issue 12). So a group holds small
batches or large ones, never both; small batches queued behind a large one are taken first,
and a large batch is overtaken at most once (then it is taken first), so neither waits for
more than about two groups. The batches of one submitting thread keep their order (a caller
that submits several batches before waiting, like ``auditkeep ingest``, sees them in the log
as it gave them).
"""

from __future__ import annotations

from collections import deque

from auditkeep.ledger.append import Pending

# A batch of at most this many events may go ahead of larger ones queued before it: sequencing
# it costs a few milliseconds, so the larger ones wait little longer.
SMALL_EVENTS = 256


class Groups:
    """Forms the writer's next group from its queue (under the writer's queue lock)."""

    def __init__(self, max_events: int) -> None:
        self.max = max_events
        self._overtaken: Pending | None = None  # the large batch small ones went ahead of once

    def take(self, queue: deque[Pending]) -> list[Pending]:
        """Remove the next group from ``queue`` and return it (empty if ``queue`` is)."""
        if not queue:
            return []
        head = queue[0]
        small_head = len(head.events) <= SMALL_EVENTS
        if small_head or head is not self._overtaken:
            group = self._smalls(queue)
            if group:
                if not small_head:
                    self._overtaken = head
                return group
        return self._larges(queue)

    def _smalls(self, queue: deque[Pending]) -> list[Pending]:
        """The small batches that may go now: each one's thread has nothing queued before it."""
        taken: list[Pending] = []
        left: deque[Pending] = deque()
        held: set[int] = set()  # threads with a batch left in the queue
        count = 0
        for p in queue:
            n = len(p.events)
            if n <= SMALL_EVENTS and p.thread not in held and (not taken or count + n <= self.max):
                taken.append(p)
                count += n
            else:
                held.add(p.thread)
                left.append(p)
        if taken:
            queue.clear()
            queue.extend(left)
        return taken

    def _larges(self, queue: deque[Pending]) -> list[Pending]:
        """The large batches at the head of ``queue``, in order, up to the group's size."""
        group: list[Pending] = []
        count = 0
        while queue:
            n = len(queue[0].events)
            if group and (n <= SMALL_EVENTS or count + n > self.max):
                break
            group.append(queue.popleft())
            count += n
        if any(p is self._overtaken for p in group):
            self._overtaken = None
        return group
