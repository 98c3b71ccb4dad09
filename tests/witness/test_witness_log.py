"""The log's side: checkpoints go to the witnesses in the background, their cosignatures are
stored with the checkpoint (SQLite and PostgreSQL) and served with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server_support import Server, event
from witness_support import WitnessProcess, cli_here, spec_check_cosignature

from auditkeep.ledger import Ledger
from auditkeep.log.cosignature import CosignatureVerifier
from auditkeep.log.note import parse_note
from auditkeep.witness.submit import WitnessEndpoint, WitnessSubmitter


def _new_witness(path: Path, name: str, origin: str, log_vkey: str) -> tuple[WitnessProcess, str]:
    init = cli_here("witness", "init", "--data", str(path), "--name", name)
    vkey = init.stdout.split("verifier key", 1)[1].split()[0]
    cli_here("witness", "add-log", "--data", str(path), "--origin", origin, "--key", log_vkey)
    return WitnessProcess(path), vkey


def _cosigners(note: str, vkeys: list[str]) -> dict[str, int]:
    """{witness vkey: cosigned size} of the spec-valid cosignatures in ``note``."""
    body, _ = parse_note(note)
    size = int(body.split("\n")[1])
    found = {}
    for line in note[len(body) + 1 :].splitlines(keepends=True):
        for vkey in vkeys:
            if line.startswith("\u2014 " + vkey.split("+", 1)[0] + " "):
                spec_check_cosignature(vkey, body, line)
                found[vkey] = size
    return found


def _size(note: str) -> int:
    return int(note.split("\n")[1])


def _wait(what: str, check: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


@pytest.fixture
def witnessed_server(tmp_path: Path) -> Iterator[tuple[Server, list[WitnessProcess], list[str]]]:
    data = tmp_path / "data"
    cli_here("init", "--data", str(data), "--log-id", "wlog")
    log_vkey = cli_here("pubkey", "--data", str(data), "--tenant", "acme").stdout.strip()
    origin = log_vkey.split("+", 1)[0]
    procs, vkeys = [], []
    for i in (1, 2):
        p, vkey = _new_witness(tmp_path / f"w{i}", f"witness.test/w{i}", origin, log_vkey)
        procs.append(p.start())
        vkeys.append(vkey)
    config = tmp_path / "auditkeep.toml"
    config.write_text(
        "checkpoint_interval = 0.2\nwitness_quorum = 1\nwitness_retry_max = 0.5\n"
        + "".join(f'[[witness]]\nurl = "{p.url}"\nkey = "{k}"\n' for p, k in zip(procs, vkeys, strict=True))
    )
    server = Server(data, args=("--config", str(config)))
    try:
        yield server, procs, vkeys
    finally:
        server.stop()
        for p in procs:
            p.stop()


def _metric(text: str, name: str, witness: str) -> float:
    m = re.search(rf'^{name}{{tenant="acme",witness="{re.escape(witness)}"}} (\S+)$', text, re.M)
    assert m, f"{name} for {witness} not in metrics"
    return float(m.group(1))


def test_ingest_goes_on_while_a_witness_is_down_and_it_catches_up(
    witnessed_server: tuple[Server, list[WitnessProcess], list[str]],
) -> None:
    server, (_w1, w2), vkeys = witnessed_server
    key = server.key("acme", "ingest,read,verify")
    w2.kill()
    total = 0
    with server.client(key) as c, server.client(server.admin) as admin:
        for batch in range(10):
            r = c.post("/v1/events", json=[event(batch * 10 + i) for i in range(10)])
            assert r.status_code in (200, 201), r.text
            total += 10

        def w1_has_all() -> bool:
            note = c.get("/v1/checkpoints/latest").text
            # (the log also holds the audit event of the key's creation: >= total)
            return _size(note) >= total and vkeys[0] in _cosigners(note, vkeys)

        _wait("w1 cosigns the latest checkpoint while w2 is down", w1_has_all)
        note = c.get("/v1/checkpoints/latest").text
        assert vkeys[1] not in _cosigners(note, vkeys)
        total = _size(note)
        metrics = admin.get("/metrics").text
        assert _metric(metrics, "auditkeep_witness_cosigned_size", "witness.test/w1") == total
        assert _metric(metrics, "auditkeep_witness_lag_entries", "witness.test/w2") > 0
        assert _metric(metrics, "auditkeep_witness_failures", "witness.test/w2") >= 1

        w2.start()  # same directory, same port: it comes back

        def both_have_all() -> bool:
            note = c.get("/v1/checkpoints/latest").text
            return _cosigners(note, vkeys) == {vkeys[0]: total, vkeys[1]: total}

        _wait("w2 catches up after its restart", both_have_all)
        tiles_note = c.get("/v1/logs/acme/checkpoint").text
        assert _cosigners(tiles_note, vkeys) == {vkeys[0]: total, vkeys[1]: total}
        metrics = admin.get("/metrics").text
        assert _metric(metrics, "auditkeep_witness_lag_entries", "witness.test/w2") == 0
        witnessed = re.search(r'^auditkeep_witnessed_size\{tenant="acme"\} (\S+)$', metrics, re.M)
        assert witnessed and float(witnessed.group(1)) == total  # quorum 1


def test_the_submitter_stores_cosignatures_in_each_store(
    ledger: Ledger, tmp_path: Path, store_kind: str
) -> None:
    ledger.append([event(i) for i in range(40)], tenant="acme")
    ledger.checkpoint("acme", new=True)
    proc, vkey = _new_witness(tmp_path / "w", "witness.test/s", ledger.origin("acme"), ledger.pubkey("acme"))
    proc.start()
    submitter = WitnessSubmitter(
        ledger.store, [WitnessEndpoint(proc.url, CosignatureVerifier.from_vkey(vkey))], retry_max=0.5, poll_interval=0.05
    ).start()
    try:
        _wait("first cosignature", lambda: vkey in _cosigners(ledger.cosigned_checkpoint("acme"), [vkey]))
        ledger.append([event(i) for i in range(40, 300)], tenant="acme")
        ledger.checkpoint("acme", new=True)
        _wait("cosignature of the grown log", lambda: _cosigners(ledger.cosigned_checkpoint("acme"), [vkey]) == {vkey: 300})
        # The cosignature of the first checkpoint stays with it.
        assert _cosigners(ledger.cosigned_checkpoint("acme", size=40), [vkey]) == {vkey: 40}
        assert ledger.store.latest_checkpoint(ledger.tenant_id("acme")).note == ledger.checkpoint("acme")  # type: ignore[union-attr]
    finally:
        submitter.stop()
        proc.stop()
