"""Archive segments on a directory target, on both stores: ranges, proofs, readiness,
retention's order (archive before delete), erasure and restore."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from archive_support import DAY, MARKER_IP, MARKER_NAME, check, fill, key

from auditkeep.archive.check import read_segment_files
from auditkeep.archive.restore import restore_segment
from auditkeep.archive.run import archived_to, list_segments, run_archive
from auditkeep.archive.target import ArchiveTargetError, DirTarget
from auditkeep.config import load_settings
from auditkeep.errors import ConfigError
from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import Expired, LogReader
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier
from auditkeep.retention import load_policies, run_retention
from auditkeep.retention.erase import erase_subject
from auditkeep.store.base import SUBJECTS_ARE_ACTORS


def test_segments_cover_the_log_in_aligned_ranges_and_verify(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    fill(lg, 1000)
    target = DirTarget(tmp_path / "arch")
    at = lg.head("default").received_ns + DAY
    done = run_archive(lg, target, [], 256, at, older_than_ns=DAY // 2)
    assert done[0].segments == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    tid = lg.tenant_id("default")
    assert archived_to(lg.store, tid) == 1000
    for first, end in done[0].segments:
        rep = check(target, "default", first, end, key(lg))
        assert rep.ok, rep.failures
        assert rep.entries == end - first
    # a later run archives only what is new, from the cursor on
    # the run recorded what it archived in the tenant's log (index 1000)
    rec = lg.record_at(1000, "default").event
    assert rec.action == "auditkeep.archive.written"
    assert rec.metadata == {"segments": [[0, 256], [256, 512], [512, 768], [768, 1000]], "count": 1000,
                            "target": str(tmp_path / "arch")}
    fill(lg, 100, start=1000)
    again = run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=DAY // 2)
    assert again[0].segments == [(1000, 1024), (1024, 1101)]
    rows = list_segments(target, "default")
    assert [(r["first"], r["end"]) for r in rows] == [*done[0].segments, (1000, 1024), (1024, 1101)]
    assert all(r["complete"] for r in rows)


def test_nothing_ready_nothing_archived(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    fill(lg, 50)
    target = DirTarget(tmp_path / "arch")
    # no policy with archive_after and no older_than: nothing is ready
    assert run_archive(lg, target, load_policies([{"delete_after": "1d"}]), 256)[0].segments == []
    # entries younger than older_than are not ready
    assert run_archive(lg, target, [], 256, older_than_ns=DAY)[0].segments == []
    assert list_segments(target) == []
    assert lg.head("default").size == 50  # nothing archived, nothing recorded


def test_archive_after_stops_at_the_first_entry_not_yet_due(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    fill(lg, 300, action="db.read")
    fill(lg, 10, action="user.login", start=300)
    fill(lg, 20, action="db.read", start=310)
    policies = load_policies([
        {"name": "db", "action": "db.*", "archive_after": "1d"},
        {"name": "users", "action": "user.*", "archive_after": "30d"},
    ])
    target = DirTarget(tmp_path / "arch")
    at = lg.head("default").received_ns + 2 * DAY
    done = run_archive(lg, target, policies, 4096, at)
    assert done[0].archived_to == 300  # the user.* events are not due for 30 days
    assert check(target, "default", 0, 300, key(lg)).ok
    done = run_archive(lg, target, policies, 4096, at + 30 * DAY)
    assert done[0].segments == [(300, 331)]  # with the record of the first run


def test_a_checkpoint_is_signed_when_none_covers_the_ready_range(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 300)
        lg.checkpoint("default", new=True)
        fill(lg, 50, start=300)
        tid = lg.tenant_id("default")
        before = lg.store.latest_checkpoint(tid)
        assert before is not None and before.size == 300
        target = DirTarget(tmp_path / "arch")
        done = run_archive(lg, target, [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        assert done[0].segments == [(0, 350)]
        rep = check(target, "default", 0, 350, key(lg))
        assert rep.ok and rep.tree_size >= 350, rep.failures


def test_personal_plaintext_is_never_archived_and_erasure_needs_nothing_of_it(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 200)
        target = DirTarget(tmp_path / "arch")
        run_archive(lg, target, [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        raw = b""
        for p in sorted((tmp_path / "arch").rglob("*")):
            if p.is_file():
                b = p.read_bytes()
                raw += zstandard.ZstdDecompressor().stream_reader(b).read() if p.name.endswith(".zst") else b
        assert b'\\"metadata\\":{\\"n\\":199}' in raw  # the events are there ...
        assert MARKER_NAME.encode() not in raw and MARKER_IP.encode() not in raw  # ... their personal fields are not
        erase_subject(lg, "default", "u3", "request 1", {"id": "admin", "type": "user"})
        # the archived leaves did not change: the segment still verifies against its checkpoint
        assert check(target, "default", 0, 200, key(lg)).ok
        restored = tmp_path / "restored"
        restore_segment(*read_segment_files(tmp_path / "arch/default/000000000000-000000000200"), restored)
    with LogReader.open(restored) as rd:
        rec = rd.record_at(5, "default")
        assert rec.event.actor.name == "[erased]" and rec.event.actor.ip == "[erased]"  # only commitments were archived


def test_retention_deletes_an_archive_after_entry_only_once_archived(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    fill(lg, 400)
    policies = load_policies([{"action": "user.*", "archive_after": "1d", "delete_after": "2d"}])
    at = lg.head("default").received_ns + 3 * DAY
    plans = run_retention(lg, policies, at, "default")  # no archiver: nothing may go
    assert plans[0].due == 0 and plans[0].unarchived == 400
    lg.record_at(0, "default")  # still there
    target = DirTarget(tmp_path / "arch")

    def archive(head: object) -> None:
        run_archive(lg, target, policies, 256, at, "default")

    plans = run_retention(lg, policies, at, "default", archive=archive)
    assert plans[0].due == 400 and plans[0].unarchived == 0
    with pytest.raises(Expired):
        lg.record_at(0, "default")
    # the archive kept every payload retention then deleted, provably
    for first, end in [(0, 256), (256, 400)]:
        rep = check(target, "default", first, end, key(lg))
        assert rep.ok and rep.entries == end - first and rep.expired == 0, rep.failures
    rep_v = lg.verify("default", trust=Trust.given([NoteVerifier.from_vkey(key(lg))])).tenants[0]
    assert rep_v.ok, rep_v.problems


def test_entries_expired_before_archiving_are_archived_as_hashes(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 100, action="db.read")
        fill(lg, 100, action="user.login", start=100)
        at = lg.head("default").received_ns + 3 * DAY
        run_retention(lg, load_policies([{"action": "db.*", "delete_after": "1d"}]), at, "default")
        target = DirTarget(tmp_path / "arch")
        size = lg.head("default").size  # with the retention record just appended
        done = run_archive(lg, target, [], 4096, at, "default", older_than_ns=DAY)
        assert done[0].segments == [(0, size)]
        rep = check(target, "default", 0, size, key(lg))
        assert rep.ok and rep.expired == 100 and rep.entries == size - 100, rep.failures


def test_restore_brings_back_the_exact_leaves_for_search(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 600)
        target = DirTarget(tmp_path / "arch")
        run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
        leaves = {e.index: e.leaf for e in lg.store.entries(lg.tenant_id("default"), 0, 600)}
    out = tmp_path / "restored"
    stem = tmp_path / "arch/default/000000000256-000000000512"
    m, d = read_segment_files(stem)
    assert restore_segment(m, d, out).entries == 256
    assert restore_segment(m, d, out).entries == 0  # again: already there
    stem = tmp_path / "arch/default/000000000000-000000000256"
    restore_segment(*read_segment_files(stem), out)
    with LogReader.open(out) as rd:
        tid = rd.tenant_id("default")
        got = {e.index: e.leaf for e in rd.store.entries(tid, 0, 600)}
        assert got == {i: leaves[i] for i in range(512)}
        page = rd.search("default", limit=1000)
        assert sorted(r.index for r in page.items) == list(range(512))  # both ranges, in any order restored
        assert len(rd.search("default", text="login", limit=5).items) == 5
        # subjects as the archived log's writer set them: an erasure scans, not by actor
        assert rd.store.meta(SUBJECTS_ARE_ACTORS) == "0"


def test_a_directory_target_never_replaces_an_object(tmp_path: Path) -> None:
    t = DirTarget(tmp_path)
    t.put("t/a.jsonl.zst", b"one")
    t.put("t/a.jsonl.zst", b"one")  # the same bytes again: accepted (a resumed run)
    with pytest.raises(ArchiveTargetError, match="never replaced"):
        t.put("t/a.jsonl.zst", b"two")
    assert t.get("t/a.jsonl.zst") == b"one"
    assert (tmp_path / "t/a.jsonl.zst").stat().st_mode & 0o222 == 0  # read-only once written
    assert t.names() == ["t/a.jsonl.zst"]


def test_archive_after_without_a_target_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "auditkeep.toml"
    cfg.write_text('[[retention.policy]]\nname = "a"\narchive_after = "30d"\ndelete_after = "1y"\n')
    with pytest.raises(ConfigError, match="archive_after but no archive target"):
        load_settings(str(cfg))
    cfg.write_text(cfg.read_text() + f'\n[archive]\ndir = "{tmp_path / "arch"}"\n')
    assert load_settings(str(cfg)).archive.dir
    cfg.write_text(f'[archive]\ndir = "{tmp_path}"\nlock_days = 3\n')
    with pytest.raises(ConfigError, match=r"needs archive\.s3_bucket"):
        load_settings(str(cfg))


def test_the_background_retention_worker_archives_before_it_deletes(tmp_path: Path) -> None:
    """What `auditkeep serve` runs: the worker, given the archiver, archives then deletes."""
    import time

    from auditkeep.archive.run import retention_archiver
    from auditkeep.config import ArchiveSettings
    from auditkeep.retention.worker import RetentionWorker

    policies = load_policies([{"action": "user.*", "archive_after": "1s", "delete_after": "1s"}])
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 50)
        time.sleep(1.1)  # both durations pass
        settings = ArchiveSettings(dir=str(tmp_path / "arch"), segment_entries=256)
        worker = RetentionWorker(lg, policies, 3600, retention_archiver(lg, settings, policies))
        assert worker.run_once()
        with pytest.raises(Expired):
            lg.record_at(49, "default")
        rep = check(DirTarget(tmp_path / "arch"), "default", 0, 50, key(lg))
        assert rep.ok and rep.entries == 50, rep.failures


def test_a_segment_rebuilt_with_other_bytes_after_a_crash_does_not_collide(tmp_path: Path) -> None:
    """A killed run stored a segment's data but not its manifest; before the next run,
    retention deleted entries of that range (a policy without archive_after). The rebuilt
    data differs, goes under its own name (write-once storage could not replace the orphan),
    and the manifest names it."""
    from auditkeep.archive.segment import build_segment

    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 20, action="db.read")
        fill(lg, 280, action="user.login", start=20)
        lg.checkpoint("default", new=True)
        tid = lg.tenant_id("default")
        cp = lg.store.checkpoint_from(tid, 256)
        assert cp is not None
        target = DirTarget(tmp_path / "arch")
        orphan = build_segment(lg.store, tid, "default", lg.origin("default"), 0, 256, cp, 0,
                               lg.identity.signers_for(lg.origin("default")))
        target.put(orphan.data_name, orphan.data)  # ... and the run was killed here
        at = lg.head("default").received_ns + 3 * DAY
        run_retention(lg, load_policies([{"action": "db.*", "delete_after": "1d"}]), at, "default")
        done = run_archive(lg, target, [], 256, at, "default", older_than_ns=DAY)
        assert done[0].segments[0] == (0, 256)
        rep = check(target, "default", 0, 256, key(lg))
        assert rep.ok and rep.expired == 20, rep.failures
        assert target.exists(orphan.data_name)  # still there, unreferenced
        assert len(target.names("default/000000000000-000000000256.")) == 3


def test_one_archiving_process_per_store(tmp_path: Path) -> None:
    from auditkeep.archive.run import LEASE, ArchiveBusy

    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 10)
        lease = lg.store.lease(LEASE)
        assert lease is not None
        try:
            with pytest.raises(ArchiveBusy, match="archive lease"):
                run_archive(lg, DirTarget(tmp_path / "arch"), [], 256, older_than_ns=1)
        finally:
            lease.release()
