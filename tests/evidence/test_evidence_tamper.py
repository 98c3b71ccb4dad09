"""Every change an attacker can make to a bundle fails with a reason: changed, removed,
reordered or added events, a window stretched or cut at either end, forged proofs.

The edits keep the manifest's file hashes right (tests/evidence/bundle_edit.py), so only the
proofs can catch them."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

import pytest
from bundle_edit import Parts, Row, leaf_hash, rehash  # type: ignore[import-not-found]
from evidence_support import SECOND, EvidenceLog  # type: ignore[import-not-found]
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from auditkeep.evidence import build_bundle, verify_bundle
from auditkeep.model.timefmt import format_rfc3339

pytestmark = pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)

Edit = Callable[[Parts], None]
FIELDS = ("action", "outcome", "time", "received_at", "category")


def _bundle(log: EvidenceLog, **kw: object) -> bytes:
    buf = io.BytesIO()
    build_bundle(log.ledger, buf, "default", log.times[1], log.times[3], **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _canonical(ev: dict[str, object]) -> bytes:
    return json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fails(data: bytes, key: str) -> list[str]:
    result = verify_bundle(data, [key])
    assert not result.ok, "the edited bundle passed"
    assert all(isinstance(f, str) and f for f in result.failures)
    return result.failures


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, Edit]:
    """A named edit of a bundle of rows before, 20 events, after (22 rows)."""
    kind = draw(st.sampled_from(
        ["change", "change-unhashed", "remove", "remove-keep-indices", "reorder", "add", "cut-start",
         "cut-end", "stretch-since", "stretch-until", "shrink-since", "shrink-until", "hide", "proof", "relabel"]
    ))  # fmt: skip
    i = draw(st.integers(1, 20))  # an event row
    j = draw(st.integers(0, 21).filter(lambda x: x != i))
    k = draw(st.integers(1, 5))
    field = draw(st.sampled_from(FIELDS))

    def edit(p: Parts) -> None:
        rows = p.rows
        if kind in ("change", "change-unhashed"):
            ev = json.loads(rows[i].leaf)
            ev[field] = format_rfc3339(p_time(ev) + 1) if field in ("time", "received_at") else f"{ev.get(field)}x"
            rows[i].leaf = _canonical(ev)
            if kind == "change":
                rehash(rows[i])
        elif kind == "remove":
            del rows[i]
            p.renumber()
        elif kind == "remove-keep-indices":
            del rows[i]
        elif kind == "reorder":
            a, b = sorted((i, j))
            rows[a].leaf, rows[b].leaf, rows[a].hash, rows[b].hash = rows[b].leaf, rows[a].leaf, rows[b].hash, rows[a].hash
            rows[a].kind, rows[b].kind = rows[b].kind, rows[a].kind
        elif kind == "add":
            ev = json.loads(rows[i].leaf)
            ev["id"] = "0190c0de-0000-7000-8000-000000000001"
            leaf = _canonical(ev)
            rows.insert(i, Row(0, leaf_hash(leaf), "event", leaf))
            p.renumber()
        elif kind == "cut-start":
            del rows[:k]
            rows[0].kind = "before"
        elif kind == "cut-end":
            del rows[-k:]
            rows[-1].kind = "after"
        elif kind in ("stretch-since", "shrink-since", "stretch-until", "shrink-until"):
            end = "since" if "since" in kind else "until"
            sign = -1 if (kind.startswith("stretch")) == (end == "since") else 1
            w = p.manifest["window"]
            w[end] = format_rfc3339(p_time({"received_at": w[end]}) + sign * k * SECOND)
        elif kind == "hide":
            rows[i].kind, rows[i].leaf = "hashed", None
        elif kind == "proof":
            proof = json.loads(p.files["proof.json"])
            hashes = proof["range"]["hashes"]
            hashes[k % len(hashes)] = "00" * 32
            p.files["proof.json"] = json.dumps(proof).encode()
        elif kind == "relabel":
            rows[0].kind = "event"

    return f"{kind} i={i} j={j} k={k} field={field}", edit


def p_time(ev: dict[str, object]) -> int:
    from auditkeep.model.timefmt import parse_rfc3339

    return parse_rfc3339(str(ev["received_at"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=edits())
def test_every_edit_fails_with_a_reason(five_batches: EvidenceLog, edit: tuple[str, Edit]) -> None:
    log = five_batches
    data = getattr(five_batches, "_bundle", None) or _bundle(log)
    five_batches._bundle = data  # type: ignore[attr-defined]
    assert verify_bundle(data, [log.ledger.pubkey()]).ok
    parts = Parts.read(data)
    note(edit[0])
    edit[1](parts)
    _fails(parts.write(), log.ledger.pubkey())


def test_named_reasons(five_batches: EvidenceLog) -> None:
    log = five_batches
    key = log.ledger.pubkey()
    data = _bundle(log)

    def reasons(edit: Edit, *, fix_range: bool = True) -> str:
        p = Parts.read(data)
        edit(p)
        return " | ".join(_fails(p.write(fix_range=fix_range), key))

    def change(p: Parts) -> None:
        ev = json.loads(p.rows[3].leaf)
        ev["outcome"] = "success" if ev["outcome"] != "success" else "failure"
        p.rows[3].leaf = _canonical(ev)

    assert "index 12 does not hash to its listed leaf hash" in reasons(change)
    assert "do not give the checkpoint's root" in reasons(lambda p: (change(p), rehash(p.rows[3])))

    def drop_before(p: Parts) -> None:
        del p.rows[0]

    assert "cut at the start" in reasons(drop_before)

    def drop_after(p: Parts) -> None:
        del p.rows[-1]

    assert "cut at the end" in reasons(drop_after)

    def stretch(p: Parts) -> None:
        p.manifest["window"]["until"] = format_rfc3339(log.times[3] + SECOND)

    assert "the entry after the range (index 30) is inside the window" in reasons(stretch)

    def remove(p: Parts) -> None:
        del p.rows[5]

    assert "expected 14 (entries removed, added or reordered)" in reasons(remove)
    assert "hashes only, but the bundle has no filters" in reasons(lambda p: setattr(p.rows[4], "kind", "hashed") or setattr(p.rows[4], "leaf", None))

    def extra_file(p: Parts) -> None:
        p.files["extra.txt"] = b"x"

    p = Parts.read(data)
    extra_file(p)
    out = p.write()
    # The manifest of write() lists extra.txt; one not listed at all is named as added.
    assert verify_bundle(out, [key]).ok
    import zipfile

    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("extra.txt", b"x")
    assert "extra.txt is in the bundle but not in the manifest (added)" in _fails(buf.getvalue(), key)

    def bad_sig(p: Parts) -> None:
        note = p.files["checkpoint.txt"].decode()
        head, sig = note.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(sig))
        raw[-1] ^= 1
        p.files["checkpoint.txt"] = (head + " " + base64.b64encode(bytes(raw)).decode() + "\n").encode()

    assert "checkpoint.txt carries no valid signature" in reasons(bad_sig)
    assert "does not match the bundle's" in reasons(lambda p: p.manifest["range"].update(events=3), fix_range=False)


def test_witness_cosignature_is_required_when_asked(five_batches: EvidenceLog) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditkeep.log.note import NoteSigner

    log = five_batches
    key = log.ledger.pubkey()
    witness = NoteSigner("witness.example/w1", Ed25519PrivateKey.generate())
    data = _bundle(log)
    assert any("no valid cosignature by witness witness.example/w1" in f for f in verify_bundle(data, [key], [witness.verifier_key()]).failures)
    # The witness adds its signature line to the latest checkpoint, as a cosigned note.
    p = Parts.read(data)
    note = p.files["latest-checkpoint.txt"].decode()
    text = note[: note.rfind("\n\n") + 1]
    p.files["latest-checkpoint.txt"] = (note + witness.signature_line(text)).encode()
    result = verify_bundle(p.write(), [key], [witness.verifier_key()])
    assert result.ok, result.failures
    assert result.summary["witnesses"] == ["witness.example/w1"]


def test_tlog_cosignature_of_a_witness_is_checked(five_batches: EvidenceLog) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditkeep.log.cosignature import Cosigner

    log = five_batches
    key = log.ledger.pubkey()
    witness = Cosigner("witness.example/w2", Ed25519PrivateKey.generate())
    vkey = witness.verifier().vkey()
    p = Parts.read(_bundle(log))
    note = p.files["checkpoint.txt"].decode()
    body = note[: note.rfind("\n\n") + 1]
    p.files["checkpoint.txt"] = (note + witness.cosign(body, 1_790_000_100)).encode()
    result = verify_bundle(p.write(), [key], [vkey])
    assert result.ok, result.failures
    # A cosignature over another timestamp than the one it carries does not verify.
    line = witness.cosign(body, 1_790_000_100).split(" ")
    blob = bytearray(base64.b64decode(line[-1]))
    blob[11] ^= 1  # the last byte of the timestamp
    p.files["checkpoint.txt"] = (note + line[0] + " " + line[1] + " " + base64.b64encode(bytes(blob)).decode() + "\n").encode()
    assert "no valid cosignature by witness witness.example/w2 on either checkpoint" in verify_bundle(p.write(), [key], [vkey]).failures
