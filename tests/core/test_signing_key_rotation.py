"""Issue 9: signing-key rotation. ``auditkeep signing-key rotate`` makes a new key; the next
checkpoints carry both signatures; the store keeps the history with each key's first size;
``verify --key OLD --key NEW`` accepts both ranges and one key alone reports the checkpoints
it did not sign; a rotation killed half-way leaves a log that writers use and complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import run  # type: ignore[import-not-found]

from auditkeep.crypto.signing import create_signing_key, load_signing_key
from auditkeep.errors import DataDirError
from auditkeep.ledger import Ledger
from auditkeep.ledger.rotation import LEASE, rotate
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier, parse_note

DATA = "auditkeep-data"


# The commands that set up and inspect the store run in this process (a CLI process spends
# ~0.5 s of CPU importing auditkeep); the rotation and the text report of verify run as
# real processes.
def _ingest(folder: Path, n: int, start: int) -> None:
    lines = [json.dumps({"actor": {"id": f"u{i}"}, "action": "doc.read", "id": f"01936f1e-6c3a-7000-8000-{i:012d}"})
             for i in range(start, start + n)]  # fmt: skip
    (folder / "e.jsonl").write_text("\n".join(lines) + "\n")
    r = run("ingest", "e.jsonl", "--tenant", "acme", cwd=folder, process=False)
    assert r.returncode == 0, r.stderr
    r = run("checkpoint", "--new", "--tenant", "acme", cwd=folder, process=False)
    assert r.returncode == 0, r.stderr


def _pubkey(folder: Path, name: str, *extra: str) -> Path:
    r = run("pubkey", *extra, cwd=folder, process=False)
    assert r.returncode == 0, r.stderr
    (folder / name).write_text(r.stdout)
    return folder / name


def _verify(folder: Path, *keys: Path) -> tuple[int, dict[str, object]]:
    args = [a for k in keys for a in ("--key", str(k))]
    r = run("verify", "--tenant", "acme", "--json", *args, cwd=folder, process=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _problems(report: dict[str, object]) -> list[str]:
    return [p["message"] for t in report["tenants"] for p in t["problems"]]  # type: ignore[attr-defined, index]


def _signers(folder: Path) -> list[bytes]:
    """The key ids of the newest stored checkpoint's signatures."""
    r = run("checkpoint", "--tenant", "acme", cwd=folder, process=False)
    assert r.returncode == 0, r.stderr
    _, sigs = parse_note(r.stdout)
    return [s.key_id for s in sigs]


def _key_id(vkey_file: Path) -> bytes:
    """The key id of a log-wide key under the tenant's origin, the name checkpoints are
    signed under."""
    v = NoteVerifier.from_vkey(vkey_file.read_text().strip().splitlines()[-1])
    return NoteVerifier(v.name + "/acme", v.public_key).key_id


def test_rotation_signs_with_both_and_verify_takes_both_ranges(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path, process=False).returncode == 0
    _ingest(tmp_path, 20, 0)
    old = _pubkey(tmp_path, "old.vkey")
    r = run("signing-key", "rotate", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rotated = json.loads(r.stdout)
    new = _pubkey(tmp_path, "new.vkey")
    assert rotated["old"] == old.read_text().strip() and rotated["new"] == new.read_text().strip() != rotated["old"]
    assert rotated["first_sizes"] == {"acme": 20}
    _ingest(tmp_path, 10, 20)
    # the checkpoint after the rotation carries two signatures: the new key's and the old one's
    assert sorted(_signers(tmp_path)) == sorted([_key_id(new), _key_id(old)])

    assert _verify(tmp_path, old, new)[0] == 0
    code, rep = _verify(tmp_path, new)  # the checkpoint before the rotation has only the old key
    assert code == 1 and _problems(rep) == [_problems(rep)[0]]
    assert "checkpoint at size 20 is not signed by a trusted key" in _problems(rep)[0]
    text = run("verify", "--tenant", "acme", "--key", str(new), cwd=tmp_path)
    assert text.returncode == 1 and "hint: acme: the checkpoint at size 20 is signed by key 1 of 2 the store lists" in text.stderr
    assert _verify(tmp_path, old)[0] == 0  # the old key co-signs until the next rotation
    assert _verify(tmp_path)[0] == 0  # the store's keyring holds both

    # a second rotation: the first key no longer co-signs what comes after it
    assert run("signing-key", "rotate", cwd=tmp_path, process=False).returncode == 0
    third = _pubkey(tmp_path, "third.vkey")
    _ingest(tmp_path, 5, 30)
    assert sorted(_signers(tmp_path)) == sorted([_key_id(third), _key_id(new)])
    code, rep = _verify(tmp_path, old)
    # each rotation appends its record (auditkeep.signing_key.rotated), signed by the new keys at size 32
    assert code == 1 and [p.split(" is not signed by a trusted key")[0] for p in _problems(rep)] == [
        "checkpoint at size 32", "checkpoint at size 37"]
    assert _verify(tmp_path, old, new, third)[0] == 0

    # the history, as a key file verify reads: every key, oldest first, with its first sizes
    history = _pubkey(tmp_path, "all.vkey", "--all")
    lines = history.read_text().splitlines()
    keys = [x for x in lines if not x.startswith("#")]
    assert keys == [old.read_text().strip(), new.read_text().strip(), third.read_text().strip()]
    comments = [x for x in lines if x.startswith("#")]
    assert "(retired)" in comments[0] and "acme from size 20" in comments[1] and "acme from size 31" in comments[2]
    assert "(current)" in comments[2]
    assert _verify(tmp_path, history)[0] == 0
    assert run("pubkey", cwd=tmp_path, process=False).stdout.strip() == third.read_text().strip()  # the current key
    tenant_keys = run("pubkey", "--all", "--tenant", "acme", cwd=tmp_path, process=False).stdout
    assert all(k.split("+")[0].endswith("/acme") for k in tenant_keys.splitlines() if not k.startswith("#"))


_KILLED = """
import os, signal, sys
from pathlib import Path
from auditkeep.ledger.rotation import rotate
from auditkeep.store.sqlite import SQLiteStore
data = Path(sys.argv[1])
store = SQLiteStore(data)
rotate(store, data, store.meta("log_id"), after_record=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_a_rotation_killed_after_the_store_named_the_new_key_is_completed(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    _ingest(tmp_path, 20, 0)
    old = _pubkey(tmp_path, "old.vkey")
    data = tmp_path / DATA
    before = (data / "signing.key").read_bytes()
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(data)], capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # killed between the keyring and the files: the store names the new key, the file is old
    assert (data / "signing.key").read_bytes() == before and (data / "signing.key.new").exists()
    new_vkey = load_signing_key(data / "signing.key.new").verifier_key()
    assert run("pubkey", cwd=tmp_path).stdout.strip() == new_vkey
    # readers work as they are (nothing signed by the new key yet)
    assert _verify(tmp_path, old)[0] == 0
    # the next writer completes the rotation, then signs with both
    _ingest(tmp_path, 5, 20)
    assert not (data / "signing.key.new").exists()
    assert load_signing_key(data / "signing.key").verifier_key() == new_vkey
    assert (data / "signing.key.previous").read_bytes() == before
    assert os.stat(data / "signing.key.previous").st_mode & 0o077 == 0
    new = _pubkey(tmp_path, "new.vkey")
    assert sorted(_signers(tmp_path)) == sorted([_key_id(new), _key_id(old)])
    assert _verify(tmp_path, old, new)[0] == 0


def test_a_rotation_killed_before_the_store_named_the_new_key_did_not_happen(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    _ingest(tmp_path, 3, 0)
    old = _pubkey(tmp_path, "old.vkey")
    data = tmp_path / DATA
    create_signing_key(data / "signing.key.new", NoteVerifier.from_vkey(old.read_text().strip()).name)
    _ingest(tmp_path, 3, 3)  # a writer discards the key that never signed
    assert not (data / "signing.key.new").exists()
    assert _pubkey(tmp_path, "now.vkey").read_text() == old.read_text()
    assert _signers(tmp_path) == [_key_id(old)]
    # and a rotation run after it works
    assert run("signing-key", "rotate", cwd=tmp_path).returncode == 0
    assert _pubkey(tmp_path, "new.vkey").read_text() != old.read_text()


def test_rotate_refuses_a_key_from_the_configuration(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    text = (tmp_path / DATA / "signing.key").read_text()
    r = run("signing-key", "rotate", cwd=tmp_path, env={"AUDITKEEP_SIGNING_KEY": text})
    assert r.returncode == 2 and "configuration" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "PRIVATE+KEY" not in r.stderr


def test_rotation_on_both_stores(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    """The keyring lives in the store (SQLite or PostgreSQL), the key files in the data
    directory: a ledger opened after a rotation signs with both keys."""
    lg = make_ledger(background=False)
    lg.append([{"actor": {"id": f"u{i}"}, "action": "doc.read"} for i in range(7)], "acme")
    first = lg.checkpoint("acme", new=True)
    old_vkey = lg.pubkey()
    old, new = rotate(lg.store, tmp_path / "data", lg.identity.log_id)
    assert old.vkey == old_vkey and new.first_sizes == {"acme": 7}
    lease = lg.store.lease(LEASE)  # released after the rotation; held, it stops another one
    assert lease is not None
    with pytest.raises(DataDirError, match="another signing-key rotation"):
        rotate(lg.store, tmp_path / "data", lg.identity.log_id)
    lease.release()
    lg.close()
    lg2 = make_ledger(background=False)
    assert lg2.identity.previous is not None and lg2.pubkey() == new.vkey
    lg2.append([{"actor": {"id": "u9"}, "action": "doc.read"}], "acme")
    note = lg2.checkpoint("acme", new=True)
    assert len(parse_note(note)[1]) == 2 and len(parse_note(first)[1]) == 1
    keys = [NoteVerifier.from_vkey(v) for v in (old.vkey, new.vkey)]
    assert lg2.verify("acme", trust=Trust.given(keys)).ok
    assert not lg2.verify("acme", trust=Trust.given(keys[1:])).ok  # size 7 has the old key only
    assert lg2.verify("acme", trust=Trust.given(keys[:1])).ok  # the old key co-signs size 8
