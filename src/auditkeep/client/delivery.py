"""Delivering one batch, isolating the events the server refuses.

A batch is all or nothing on the server, so one poison event (one the server refuses
although it passed local validation: a reused id, a stricter server limit) would hold
back every event queued behind it. Here a refused batch is split — at the position the
server names, or in halves — until each refused event stands alone; those are reported,
the rest delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditkeep.client.transport import Answer, Kind

__all__ = ["Outcome", "deliver"]

Send = Callable[[str | None, list[bytes]], Answer]


@dataclass
class Outcome:
    """What became of a batch: delivered, refused, and what is left to retry (in order)."""

    delivered: int = 0
    refused: list[tuple[bytes, Answer]] = field(default_factory=list)
    remaining: list[bytes] = field(default_factory=list)
    failure: Answer | None = None  # why ``remaining`` is not delivered (RETRY or STUCK)


def deliver(send: Send, tenant: str | None, events: list[bytes]) -> Outcome:
    out = Outcome()
    todo: list[list[bytes]] = [events]  # a stack of parts; the top is the oldest
    while todo:
        part = todo.pop()
        if not part:
            continue
        answer = send(tenant, part)
        if answer.kind is Kind.OK:
            out.delivered += len(part)
        elif answer.kind is Kind.REFUSED:
            if len(part) == 1:
                out.refused.append((part[0], answer))
            elif answer.position is not None:
                p = answer.position
                out.refused.append((part[p], answer))
                todo.append(part[:p] + part[p + 1 :])
            else:
                half = len(part) // 2
                todo.append(part[half:])
                todo.append(part[:half])
        else:
            out.failure = answer
            out.remaining = [e for p in (part, *reversed(todo)) for e in p]
            return out
    return out
