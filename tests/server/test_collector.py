"""The collector settings of the server's processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from auditkeep.server.collector import YOUNG_THRESHOLD, settle


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_start_up_and_raises_only_the_young_threshold(restored: None) -> None:
    middle, old = gc.get_threshold()[1:]
    start_up = [[i] for i in range(1000)]  # containers alive before the server listens
    settle()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() >= len(start_up)
    # a batch's worth of short-lived containers no longer triggers a young collection
    collections = gc.get_stats()[0]["collections"]
    batch = [{"actor": {"id": str(i)}, "metadata": {"k": [i]}} for i in range(3000)]
    del batch
    assert gc.get_stats()[0]["collections"] == collections
