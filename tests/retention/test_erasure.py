"""GDPR erasure by crypto-shredding, on both stores: the plaintext is gone from every file,
every leaf, checkpoint and proof stays valid."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from auditkeep.errors import NotFound
from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import ERASED
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier
from auditkeep.retention import new_hold
from auditkeep.retention.erase import ACTION, erase_subject
from auditkeep.retention.holds import HoldError
from auditkeep.retention.service import add_hold, release_hold

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"id": "test-admin", "type": "user"}
MARKERS = ("ZqMarkerName", "zqmarker-ip-7", "zqmarker@example.org")


def _events(n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        mine = i % 3 == 0
        out.append(
            {
                "actor": {"id": "u-1" if mine else f"u-{i % 3 + 1}",
                          "name": MARKERS[0] if mine else f"Other Person {i}",
                          "user_agent": MARKERS[1] if mine else "curl"},
                "action": "user.login",
                "resource": {"type": "doc", "id": f"d{i}"},
                "metadata": {"email": MARKERS[2] if mine else f"p{i}@example.com", "n": i},
            }
        )
    return out


def _raw_hits(directory: Path) -> list[str]:
    found = []
    for f in directory.iterdir():
        if not f.is_file():
            continue
        data = f.read_bytes().lower()
        found += [f"{f.name}: {m}" for m in MARKERS if m.lower().encode() in data]
    return found


def _verifier(tmp_path: Path, vkey: str, proof: object, leaf: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "log.vkey").write_text(vkey + "\n")
    (tmp_path / "proof.json").write_text(json.dumps(msgspec.to_builtins(proof)))
    (tmp_path / "leaf").write_bytes(leaf)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "verify_proof.py"), str(tmp_path / "log.vkey"),
         str(tmp_path / "proof.json"), str(tmp_path / "leaf")],
        capture_output=True, text=True, timeout=60,
    )


def test_erasure_shreds_the_plaintext_and_keeps_every_proof(
    make_ledger: Callable[..., Ledger], store_kind: str, tmp_path: Path
) -> None:
    lg = make_ledger()
    lg.append(_events(90), "default")
    lg.sync_projection("default")
    assert lg.search("default", text=MARKERS[0]).items  # indexed before
    old_note = lg.checkpoint("default", new=True)
    old_size = lg.head("default").size
    leaves = {i: lg.entry(i, "default").leaf for i in range(old_size)}

    done = erase_subject(lg, "default", "u-1", "GDPR request 2026-0042", ADMIN)
    assert done.events == 30 and sum(b - a for a, b in done.ranges) == 30

    for i in range(90):
        rec = lg.record_at(i, "default")
        assert lg.entry(i, "default").leaf == leaves[i]  # no leaf changed
        if i % 3 == 0:
            assert rec.event.actor.name == ERASED and rec.event.actor.user_agent == ERASED
            assert rec.event.metadata == {"email": ERASED, "n": i}
        else:
            assert rec.event.actor.name == f"Other Person {i}"
    assert lg.search("default", text=MARKERS[0]).items == []
    assert len(lg.search("default", actor="u-1", limit=1000).items) == 30  # still found, erased
    # the record names no subject and no value
    rec = lg.search("default", action=ACTION).items
    assert len(rec) == 1 and rec[0].event.metadata and rec[0].event.metadata["events"] == 30
    raw = lg.entry(rec[0].index, "default").leaf
    assert b"u-1" not in raw and not any(m.lower().encode() in raw.lower() for m in MARKERS)

    trust = Trust.given([NoteVerifier.from_vkey(lg.pubkey())])
    rep = lg.verify("default", trust=trust).tenants[0]
    assert rep.ok, rep.problems
    assert rep.erased == 90  # three personal fields of thirty events
    new_note = lg.checkpoint("default", new=True)
    assert new_note != old_note
    for size in (old_size, None):
        proof = lg.prove_inclusion(0, "default", size)
        done_proc = _verifier(tmp_path, lg.pubkey(), proof, leaves[0])
        assert done_proc.returncode == 0, done_proc.stdout + done_proc.stderr

    if store_kind == "sqlite":
        assert _raw_hits(tmp_path / "data") == []
    else:
        import shutil

        import pg_support  # type: ignore[import-not-found]

        pg_dump = shutil.which("pg_dump")
        if pg_dump is not None:  # the rows as a backup made now would hold them
            dump = subprocess.run([pg_dump, "-n", lg.store.schema, pg_support.base_url()],  # type: ignore[attr-defined]
                                  capture_output=True, timeout=120)
            assert dump.returncode == 0, dump.stderr
            assert not any(m.lower().encode() in dump.stdout.lower() for m in MARKERS)

    with pytest.raises(NotFound):
        erase_subject(lg, "default", "u-1", "again", ADMIN)
    # the subject's later events get a new salt and are readable
    r = lg.append([{"actor": {"id": "u-1", "name": "Back Again"}, "action": "user.login"}], "default")[0]
    assert lg.record_at(r.index, "default").event.actor.name == "Back Again"
    rep = lg.verify("default", trust=trust).tenants[0]
    assert rep.ok, rep.problems


def test_a_hold_blocks_erasure_with_a_clear_message(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    lg.append(_events(12), "default")
    hold = add_hold(lg, new_hold("default", "litigation", "test-admin", resource_type="doc", resource_id="d3"), ADMIN)
    with pytest.raises(HoldError) as info:
        erase_subject(lg, "default", "u-1", "GDPR", ADMIN)
    assert hold.id in str(info.value) and "nothing was erased" in str(info.value)
    assert lg.record_at(0, "default").event.actor.name == MARKERS[0]
    assert lg.search("default", action=ACTION).items == []
    release_hold(lg, hold.id, ADMIN, "settled")
    assert erase_subject(lg, "default", "u-1", "GDPR", ADMIN).events == 4
    assert lg.record_at(3, "default").event.actor.name == ERASED


def test_erase_command(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=tmp_path,
                              capture_output=True, text=True, env=env, timeout=300)

    (tmp_path / "ev.jsonl").write_text("\n".join(json.dumps(e) for e in _events(9)) + "\n")
    assert run("init").returncode == 0
    assert run("ingest", "ev.jsonl").returncode == 0
    r = run("hold", "add", "--tenant", "default", "--actor", "u-1", "--reason", "case", "--json")
    hold = json.loads(r.stdout)["id"]
    r = run("erase", "--tenant", "default", "--subject", "u-1", "--reason", "GDPR")
    assert r.returncode == 2 and hold in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert run("hold", "release", hold, "--reason", "done").returncode == 0
    r = run("erase", "--tenant", "default", "--subject", "u-1", "--reason", "GDPR", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] == 3
    r = run("search", "--actor", "u-1", "--json")
    assert r.returncode == 0 and ERASED in r.stdout and MARKERS[0] not in r.stdout
    r = run("verify", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["tenants"][0]["personal_fields_erased"] == 9
    r = run("erase", "--tenant", "default", "--subject", "u-1", "--reason", "again")
    assert r.returncode == 2 and "erased already" in r.stderr
    assert _raw_hits(tmp_path / "auditkeep-data") == []


def test_a_writer_with_a_warm_salt_cache_never_reuses_an_erased_salt(make_ledger: Callable[..., Ledger]) -> None:
    first = make_ledger()
    second = make_ledger()  # another writer on the same store, as another process or node
    first.append([{"actor": {"id": "u-9", "name": "Warm Cache"}, "action": "a.b"}], "default")  # caches u-9's salt
    erase_subject(second, "default", "u-9", "GDPR", ADMIN)
    r = first.append([{"actor": {"id": "u-9", "name": "After Erasure"}, "action": "a.b"}], "default")[0]
    assert first.record_at(r.index, "default").event.actor.name == "After Erasure"
    assert first.record_at(0, "default").event.actor.name == ERASED
    rep = first.verify("default", trust=Trust.given([NoteVerifier.from_vkey(first.pubkey())])).tenants[0]
    assert rep.ok, rep.problems
    assert rep.erased == 1 and rep.sealed_checked == 1


def test_events_appended_after_the_scan_are_erased_too(make_ledger: Callable[..., Ledger]) -> None:
    """The store is given the entries one scan found below an index; entries of the subject
    appended from that index on (after the scan, before the salt is destroyed) are found by
    scanning the tail, and entries below it that the scan did not report are left alone."""
    lg = make_ledger(background=False)
    lg.append(_events(30), "default")
    tid = lg.tenant_id("default")
    below = lg.head("default").size
    found = lg.store.subject_entries(tid, "u-1")
    assert len(found) == 10
    lg.append(_events(9), "default")  # three more of u-1's, as if appended meanwhile
    known = {(tid << 40) | e.index: "" for e in found[:5]}  # half of them reported below ``below``
    erased = lg.store.erase_subject(tid, "u-1", known, [], scanned_below=below)
    assert erased == sorted([e.index for e in found[:5]] + [below, below + 3, below + 6])
    left = {e.index for e in lg.store.subject_entries(tid, "u-1")}
    assert left == {e.index for e in found[5:]}  # not reported and below the index: not scanned
