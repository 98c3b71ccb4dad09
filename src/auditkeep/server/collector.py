"""The cyclic garbage collector's settings for the server's processes (``serve`` and its
alert-runner child)."""

from __future__ import annotations

import gc

#: Young-generation threshold (CPython's default is 700). A 1,000-event batch in flight holds
#: ~11,000 tracked containers, so at 700 the collector ran ~16 young (and every tenth a middle)
#: collections per batch over objects that were about to die anyway; above the live set of a
#: few batches it seldom runs. Measured (decode, policy, validate and commit of 40 realistic
#: 1,000-event batches, one process): collector CPU 1.8-2.6 -> 0.04-0.06 us/event, the whole
#: path 47.4-52.1 -> 44.2-48.7 us/event. Nothing here makes reference cycles per event, so
#: memory does not grow from it.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Collect once, move what start-up made out of the collector's sight (a full collection
    under load then walks only what ingest made: 193 -> 68 ms of collector CPU over a 10 s
    load run, measured before the threshold change), and raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
