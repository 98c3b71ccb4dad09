"""Proofs and checkpoints, checked the way an outside party would (hashlib + cryptography)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditkeep.ledger import Ledger, LedgerConfig, NotFound
from auditkeep.log.proofs import verify_consistency, verify_inclusion


def _verify_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check a signed checkpoint with nothing but the specs: returns (origin, size, root)."""
    name, key_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 1  # Ed25519
    pub = raw[1:]
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        dash, signer, sig_b64 = line.split(" ")
        assert dash == "\u2014"
        if signer != name:
            continue
        blob = base64.b64decode(sig_b64)
        assert blob[:4].hex() == key_hex
        Ed25519PublicKey.from_public_bytes(pub).verify(blob[4:], text.encode())
        origin, size, root = text.splitlines()[:3]
        return origin, int(size), base64.b64decode(root)
    raise AssertionError("no signature by the log's key")


def _root_from_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, written out with hashlib."""
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise AssertionError("proof too long")
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def test_inclusion_proof_verifies_with_stdlib(ledger: Ledger) -> None:
    receipts = ledger.append([{"actor": {"id": f"a{i}"}, "action": "x"} for i in range(1000)])
    vkey = ledger.pubkey("default")  # named after the tenant's origin, as its checkpoints are signed
    for index in (0, 1, 255, 256, 257, 511, 998, 999):
        p = ledger.prove_inclusion(index)
        origin, size, root = _verify_note(p.checkpoint, vkey)
        assert origin.endswith("/default") and size == p.tree_size == 1000
        leaf = ledger.entry(index).leaf
        lh = hashlib.sha256(b"\x00" + leaf).digest()
        assert lh.hex() == p.leaf_hash == receipts[index].leaf_hash
        assert _root_from_inclusion(lh, index, size, [bytes.fromhex(h) for h in p.hashes]) == root
        assert len(p.hashes) <= 10  # ceil(log2 1000)


def test_proof_by_event_id_and_older_size(ledger: Ledger) -> None:
    first = ledger.append([{"actor": {"id": "a"}, "action": "x"} for _ in range(10)])
    old_note = ledger.checkpoint(new=True)
    ledger.append([{"actor": {"id": "b"}, "action": "x"} for _ in range(10)])
    ledger.checkpoint(new=True)
    p = ledger.prove_inclusion(event_id=first[3].id)
    assert p.index == 3 and p.tree_size == 20
    p_old = ledger.prove_inclusion(3, size=10)
    assert p_old.checkpoint == old_note
    root = base64.b64decode(old_note.split("\n")[2])
    verify_inclusion(bytes.fromhex(p_old.leaf_hash), 3, 10, [bytes.fromhex(h) for h in p_old.hashes], root)
    with pytest.raises(NotFound):
        ledger.prove_inclusion(3, size=15)
    with pytest.raises(NotFound):
        ledger.prove_inclusion(50)


def test_consistency_between_checkpoints(ledger: Ledger) -> None:
    ledger.append([{"actor": {"id": "a"}, "action": "x"} for _ in range(300)])
    old = ledger.checkpoint(new=True)
    ledger.append([{"actor": {"id": "a"}, "action": "x"} for _ in range(333)])
    ledger.checkpoint(new=True)
    p = ledger.prove_consistency(300)
    assert p.from_ == 300 and p.to == 633
    old_root = base64.b64decode(old.split("\n")[2])
    new_root = base64.b64decode(p.checkpoint.split("\n")[2])
    verify_consistency(300, 633, [bytes.fromhex(h) for h in p.hashes], old_root, new_root)


def test_checkpoints_are_kept_and_rate_limited(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger(LedgerConfig(checkpoint_interval=3600))
    for _i in range(5):
        lg.append([{"actor": {"id": "a"}, "action": "x"}])
    # The first append signs at once (no checkpoint yet); then at most one per interval.
    sizes = [row.size for row in lg.store.checkpoints(lg.tenant_id("default"))]
    assert sizes == [1]
    lg.checkpoint(new=True)
    lg.checkpoint(new=True)  # nothing new: no second checkpoint of the same size
    sizes = [row.size for row in lg.store.checkpoints(lg.tenant_id("default"))]
    assert sizes == [1, 5]
    assert lg.checkpoint_at(1).split("\n")[1] == "1"


def test_timed_checkpoint_after_growth_stops(make_ledger: Callable[..., Ledger]) -> None:
    import time

    lg = make_ledger(LedgerConfig(checkpoint_interval=0.2))
    lg.append([{"actor": {"id": "a"}, "action": "x"}])
    lg.append([{"actor": {"id": "a"}, "action": "x"}])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and lg.head("default").checkpoint_size < 2:
        time.sleep(0.05)
    assert lg.head("default").checkpoint_size == 2
