"""The SQLite projection keeps the personal plaintext's words in full-text indexes of their
own (``ev_pfts0`` .. ``ev_pfts15``, by actor): a search still matches each word in any index,
an erasure leaves the public index's blocks and the other actors' shards as they were, and an
index.db of an older layout is projected again."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.retention.erase import erase_subject
from auditkeep.store.sqlite_fulltext import PERSONAL, shard

ADMIN = {"id": "test-admin", "type": "user"}


def _events() -> list[dict[str, object]]:
    return [
        {"actor": {"id": f"u-{i % 2}", "name": "Quillon Vantablack" if i % 2 == 0 else "Other Person"},
         "action": "doc.read" if i % 3 else "user.login", "metadata": {"note": f"plainword{i}"}}
        for i in range(12)
    ]


def _matches(data: Path, table: str, word: str) -> int:
    """Rows matching ``word`` in ``table`` ("ev_pfts": in every personal shard)."""
    conn = sqlite3.connect(data / "index.db")
    try:
        return sum(int(conn.execute(f"SELECT count(*) FROM {t} WHERE {t} MATCH ?", (word,)).fetchone()[0])
                   for t in (PERSONAL if table == "ev_pfts" else (table,)))
    finally:
        conn.close()


def _blocks(data: Path) -> dict[str, str]:
    """A digest of each full-text index's stored blocks."""
    conn = sqlite3.connect(data / "index.db")
    try:
        out = {}
        for table in ("ev_fts", *PERSONAL):
            h = hashlib.sha256()
            for rowid, block in conn.execute(f"SELECT id, block FROM {table}_data ORDER BY id"):
                h.update(str(rowid).encode() + block)
            out[table] = h.hexdigest()
        return out
    finally:
        conn.close()


def _texts(lg: Ledger, text: str) -> list[int]:
    return sorted(r.index for r in lg.search("default", text=text, limit=100).items)


def test_personal_words_are_searched_in_their_own_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data, background=False) as lg:
        lg.append(_events(), "default")
        lg.sync_projection("default")
        assert _matches(data, "ev_pfts", "vantablack") == 6 and _matches(data, "ev_fts", "vantablack") == 0
        assert _matches(data, "ev_fts", "plainword3") == 1 and _matches(data, "ev_pfts", "plainword3") == 0
        # each word in either index: one personal, one public word of the same event
        assert _texts(lg, "vantablack login") == [0, 6]
        assert _texts(lg, "quillon vant*") == [0, 2, 4, 6, 8, 10]
        assert _texts(lg, "vantablack plainword4") == [4]
        assert _texts(lg, "other plainword4") == []
        counted = lg.count_by_time("default", text="vantablack login", origin_ns=0, step_ns=1 << 62)
        assert sum(n for _, _, n in counted) == 2
        assert lg.time_span("default", text="vantablack plainword4") is not None

        before = _blocks(data)
        erase_subject(lg, "default", "u-0", "test", ADMIN)
        # only u-0's shard was re-indexed and merged: the public index's blocks and the other
        # shards' are as they were (read before a search projects the erasure's own record)
        after = _blocks(data)
        assert {t for t in before if before[t] != after[t]} == {shard("u-0")}
        assert _matches(data, "ev_pfts", "vantablack") == 0
        assert _texts(lg, "vantablack") == [] and _texts(lg, "plainword4") == [4]
        assert _texts(lg, "other plainword5") == [5]


def test_an_index_of_the_older_layout_is_projected_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data, background=False) as lg:
        lg.append(_events(), "default")
        lg.sync_projection("default")
    # the older layout: every word in ev_fts, no ev_pfts
    conn = sqlite3.connect(data / "index.db")
    for table in PERSONAL:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("INSERT INTO ev_fts(rowid, body) VALUES(1 << 40, 'quillon vantablack')")
    conn.commit()
    conn.close()
    assert _matches(data, "ev_fts", "vantablack") == 1
    with Ledger.open(data, background=False) as lg:
        assert _matches(data, "ev_fts", "vantablack") == 0  # projected again from the log
        lg.sync_projection("default")
        assert _matches(data, "ev_pfts", "vantablack") == 6 and _matches(data, "ev_fts", "vantablack") == 0
        assert _texts(lg, "vantablack login") == [0, 6]
