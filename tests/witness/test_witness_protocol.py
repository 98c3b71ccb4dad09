"""The witness's add-checkpoint rules (C2SP tlog-witness), in process."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from witness_support import SimLog, spec_check_cosignature

from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.note import parse_note
from auditkeep.witness import Refusal, Witness, WitnessDir, parse_request


def _setup(tmp_path: Path, log: SimLog) -> Witness:
    wdir = WitnessDir(tmp_path / "w")
    wdir.init("witness.test/w1")
    wdir.add_log(log.origin, log.signer.verifier_key())
    return Witness(wdir, clock=lambda: 1_700_000_000.5)


def _refusal(w: Witness, body: bytes) -> Refusal:
    with pytest.raises(Refusal) as info:
        w.add_checkpoint(body)
    return info.value


def test_cosigns_a_growing_log_and_the_cosignatures_check_by_the_spec(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    vkey = w.cosigner.verifier().vkey()
    old = 0
    for grow in (1, 2, 5, 250, 7, 1):
        log.grow(grow)
        lines = w.add_checkpoint(log.request(old))
        body, _ = parse_note(log.note())
        assert spec_check_cosignature(vkey, body, lines) == 1_700_000_000
        old = len(log.hashes)
    # What it cosigned last is on disk, so a new process starts from there.
    state = WitnessDir(tmp_path / "w").state()[log.origin]
    assert (state.size, state.root) == (len(log.hashes), log.root())


def test_stale_old_size_gets_409_with_the_size_cosigned(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    log.grow(10)
    w.add_checkpoint(log.request(0))
    log.grow(5)
    r = _refusal(w, log.request(0))  # the log forgot what the witness saw
    assert (r.status, r.body, r.content_type) == (409, "10\n", "text/x.tlog.size")
    assert w.add_checkpoint(log.request(10))  # retried from the size the witness named


def test_refuses_a_rollback(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    log.grow(20)
    w.add_checkpoint(log.request(0))
    # A checkpoint of a smaller tree, however it claims its old size.
    assert _refusal(w, log.request(0, size=12)).status == 409
    assert _refusal(w, log.request(20, size=12, proof=[])).status == 400
    assert WitnessDir(tmp_path / "w").state()[log.origin].size == 20


def test_refuses_a_fork_at_the_same_size_and_a_larger_one(tmp_path: Path) -> None:
    honest = SimLog("log.test/a", seed=b"honest")
    w = _setup(tmp_path, honest)
    honest.grow(16)
    w.add_checkpoint(honest.request(0))
    # Same key, same origin, other contents: a split view.
    fork = SimLog("log.test/a", signer=honest.signer, seed=b"fork")
    fork.grow(16)
    assert _refusal(w, fork.request(16)).status == 409
    fork.grow(4)
    assert _refusal(w, fork.request(16)).status == 422
    # A proof made for the honest log does not carry the fork's root either.
    honest.grow(4)
    assert _refusal(w, fork.request(16, proof=honest.proof(16))).status == 422
    refused = (tmp_path / "w" / "refused.jsonl").read_text().splitlines()
    assert len(refused) == 3 and all(json.loads(r)["origin"] == "log.test/a" for r in refused)
    assert w.add_checkpoint(honest.request(16))


def test_unknown_origin_404_and_untrusted_key_403(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    other = SimLog("log.test/other")
    other.grow(3)
    assert _refusal(w, other.request(0)).status == 404
    impostor = SimLog("log.test/a")  # right origin, another key of the same name
    impostor.grow(3)
    assert _refusal(w, impostor.request(0)).status == 403


def test_a_bad_proof_is_422_and_a_proof_from_zero_must_be_empty(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    log.grow(9)
    assert _refusal(w, log.request(0, proof=[b"\x00" * 32])).status == 422
    w.add_checkpoint(log.request(0))
    log.grow(9)
    good = log.proof(9)
    bad = [good[0][:-1] + bytes([good[0][-1] ^ 1]), *good[1:]]
    assert _refusal(w, log.request(9, proof=bad)).status == 422
    assert _refusal(w, log.request(9, proof=good[:-1])).status == 422
    assert w.add_checkpoint(log.request(9))


def test_added_log_is_picked_up_while_running(tmp_path: Path) -> None:
    log = SimLog("log.test/a")
    w = _setup(tmp_path, log)
    late = SimLog("log.test/late")
    late.grow(2)
    assert _refusal(w, late.request(0)).status == 404
    WitnessDir(tmp_path / "w").add_log(late.origin, late.signer.verifier_key())
    assert w.add_checkpoint(late.request(0))


@pytest.mark.parametrize(
    "body",
    [
        b"old 01\n\nx\n",
        b"old -1\n\nx\n",
        b"old 1\nnot base64!\n\nx\n",
        b"old 1\n" + b"AAAA\n" + b"\nx\n",  # not a 32-byte hash
        b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * 64 + b"\nx\n",  # 64 proof lines
        b"old 1\n",
        b"\xff\xfe\n\n",
        b"x" * (64 * 1024 + 1),
    ],
)
def test_malformed_requests_are_refused_with_4xx(tmp_path: Path, body: bytes) -> None:
    w = _setup(tmp_path, SimLog("log.test/a"))
    assert 400 <= _refusal(w, body).status < 500


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_request_refuses_cleanly_or_parses(body: bytes) -> None:
    try:
        old, proof, _note = parse_request(body)
    except Refusal as exc:
        assert 400 <= exc.status < 500
    else:
        assert old >= 0 and len(proof) <= 63 and all(len(h) == 32 for h in proof)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_any_growth_sequence_is_cosigned(tmp_path_factory: pytest.TempPathFactory, steps: list[int]) -> None:
    tmp = tmp_path_factory.mktemp("w")
    log = SimLog("log.test/h")
    w = _setup(tmp, log)
    old = 0
    for n in steps:
        log.grow(n)
        lines = w.add_checkpoint(log.request(old))
        spec_check_cosignature(w.cosigner.verifier().vkey(), Checkpoint(log.origin, len(log.hashes), log.root()).body(), lines)
        old = len(log.hashes)


def test_concurrent_requests_from_one_old_size_cosign_exactly_one(tmp_path: Path) -> None:
    """The race the spec warns about: requests checked against the same old size must not
    both be cosigned, or the later write would roll the record back."""
    import threading

    log = SimLog("log.test/race")
    w = _setup(tmp_path, log)
    log.grow(10)
    w.add_checkpoint(log.request(0))
    log.grow(30)
    bodies = [log.request(10, size=s) for s in range(11, 41)]
    results: list[int] = []
    start = threading.Barrier(len(bodies))

    def send(body: bytes) -> None:
        start.wait()
        try:
            w.add_checkpoint(body)
            results.append(200)
        except Refusal as exc:
            results.append(exc.status)

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * (len(bodies) - 1)
    size = WitnessDir(tmp_path / "w").state()[log.origin].size
    assert 11 <= size <= 40 and w.latest(log.origin).size == size  # type: ignore[union-attr]
