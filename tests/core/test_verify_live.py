"""Verifying a log that grows meanwhile (a server verifying its own log): with ``live``, what
was appended after the head was read is left to the next run instead of being reported as a
problem, and an altered event is still found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditkeep.config import Settings, open_ledger
from auditkeep.ledger.verify import verify_log


def _append(lg: object, n: int, start: int = 0) -> None:
    lg.append([{"actor": {"id": f"u{i}"}, "action": "live.probe"} for i in range(start, start + n)], "acme")  # type: ignore[attr-defined]


def test_growth_after_the_head_is_not_a_problem_when_live(tmp_path: Path) -> None:
    lg = open_ledger(Settings(data=str(tmp_path / "data")), background=False)
    try:
        _append(lg, 300)
        head = lg.head("acme")
        _append(lg, 7, 300)  # grows the partial tile and puts entries past the head
        trust = lg.stored_trust(())
        still = verify_log(lg.store, head, lg.origin("acme"), trust)
        assert not still.ok and any("past the head" in p.render("acme") for p in still.problems)
        live = verify_log(lg.store, head, lg.origin("acme"), trust, live=True)
        assert live.ok, [p.render("acme") for p in live.problems]
        assert live.size == head.size
    finally:
        lg.close()


def test_an_altered_event_is_found_when_live(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lg = open_ledger(Settings(data=str(data)), background=False)
    try:
        _append(lg, 300)
        head = lg.head("acme")
        _append(lg, 5, 300)
    finally:
        lg.close()
    with sqlite3.connect(data / "log.db") as db:  # an attacker edits a stored leaf inside the head
        k, leaf = db.execute("SELECT k, leaf FROM entries WHERE k = (SELECT max(k) FROM entries) - 15").fetchone()
        db.execute("UPDATE entries SET leaf = ? WHERE k = ?", (bytes(leaf).replace(b"live.probe", b"live.prob3"), k))
    lg = open_ledger(Settings(data=str(data)), background=False)
    try:
        rep = verify_log(lg.store, head, lg.origin("acme"), lg.stored_trust(()), live=True)
        assert not rep.ok
    finally:
        lg.close()
