"""``verify --witness``: a forgery re-signed with a swapped key (or with every checkpoint
deleted) is caught by the witnesses' cosignatures, on both stores."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from attacker import Attacker, open_reader  # type: ignore[import-not-found]
from witness_support import WitnessProcess, cli, cli_here

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.verify import TenantReport
from auditkeep.ledger.witnessed import WitnessPolicy, check_witnessed, witness_keys
from auditkeep.witness.submit import WitnessEndpoint, WitnessSubmitter

N, STEP = 2000, 500


def _witness(tmp_path: Path, name: str, lg: Ledger) -> tuple[WitnessProcess, str]:
    # in this process: test_witness_check runs both commands as real processes
    init = cli_here("witness", "init", "--data", str(tmp_path / name), "--name", f"witness.test/{name}")
    vkey = init.stdout.split("verifier key", 1)[1].split()[0]
    cli_here("witness", "add-log", "--data", str(tmp_path / name), "--origin", lg.origin("acme"), "--key", lg.pubkey("acme"))
    return WitnessProcess(tmp_path / name).start(), vkey


@pytest.fixture
def witnessed(make_ledger: Callable[..., Ledger], tmp_path: Path) -> Iterator[tuple[Ledger, list[str]]]:
    """N events in tenant acme, a checkpoint every STEP, each cosigned by two witnesses as it
    was made; then the writer is closed, as it is when someone edits the files at rest."""
    lg = make_ledger(LedgerConfig(checkpoint_interval=3600), background=False)
    procs, vkeys = zip(*(_witness(tmp_path, n, lg) for n in ("w1", "w2")), strict=True)
    endpoints = [WitnessEndpoint(p.url, v) for p, v in zip(procs, witness_keys(vkeys), strict=True)]
    submitter = WitnessSubmitter(lg.store, endpoints, poll_interval=0.05, retry_max=0.5).start()
    try:
        for start in range(0, N, STEP):
            lg.append([{"actor": {"id": f"u{i % 7}"}, "action": "db.query", "metadata": {"i": i}}
                       for i in range(start, start + STEP)], "acme")  # fmt: skip
            lg.checkpoint("acme", new=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                len(submitter.progress()) < 2
                or any((p.cosigned_size or 0) < start + STEP for _, t, p in submitter.progress() if t == "acme")
            ):
                time.sleep(0.05)
    finally:
        submitter.stop()
        for p in procs:
            p.stop()
    lg.close()
    yield lg, list(vkeys)


def _verify(lg: Ledger, vkeys: list[str], quorum: int = 1) -> tuple[TenantReport, int]:
    with open_reader(lg) as rd:
        rep = rd.verify("acme").tenants[0]
        size = check_witnessed(rd.store, rd.head("acme"), rd.origin("acme"), WitnessPolicy(witness_keys(vkeys), quorum), rep)
    return rep, size


def test_intact_witnessed_log(witnessed: tuple[Ledger, list[str]]) -> None:
    lg, vkeys = witnessed
    rep, size = _verify(lg, vkeys, quorum=2)
    assert rep.ok and size == N and not rep.warnings


def test_forgery_resigned_with_a_swapped_key_is_caught(witnessed: tuple[Ledger, list[str]]) -> None:
    lg, vkeys = witnessed
    attacker = Attacker(lg)
    attacker.rewrite({100: attacker.leaf(100).replace(b'"i":100', b'"i":101')})
    attacker.replace_keys_and_resign(lg.log_id, getattr(lg.store, "directory", None))
    with open_reader(lg) as rd:
        assert rd.verify("acme").tenants[0].ok  # the store vouches for itself...
    rep, size = _verify(lg, vkeys)  # ...the witnesses do not
    assert not rep.ok and size == 0
    assert {p.kind for p in rep.problems} == {"witness"}
    assert any("re-signed" in p.message for p in rep.problems)


def test_forgery_with_every_checkpoint_and_cosignature_deleted_is_caught(witnessed: tuple[Ledger, list[str]]) -> None:
    lg, vkeys = witnessed
    attacker = Attacker(lg)
    attacker.rewrite({100: attacker.leaf(100).replace(b'"i":100', b'"i":101')})
    attacker.delete_checkpoints_above(0)
    attacker.set_checkpointed_size(0)
    attacker.run(("DELETE FROM docs WHERE collection=?", ("cosignatures",)))
    with open_reader(lg) as rd:
        assert rd.verify("acme").tenants[0].ok  # nothing signed: only a warning without witnesses
    rep, size = _verify(lg, vkeys)
    assert not rep.ok and size == 0 and [p.kind for p in rep.problems] == ["witness"]


def test_truncated_tail_is_caught_by_the_cosignatures_left_behind(witnessed: tuple[Ledger, list[str]]) -> None:
    lg, vkeys = witnessed
    attacker = Attacker(lg)
    attacker.rewrite(keep=N - STEP)
    attacker.delete_checkpoints_above(N - STEP)
    attacker.set_checkpointed_size(N - STEP)
    with open_reader(lg) as rd:
        assert rd.verify("acme").tenants[0].ok  # consistent with itself, just shorter
    rep, size = _verify(lg, vkeys, quorum=2)
    assert not rep.ok and [p.kind for p in rep.problems] == ["witness"]
    assert f"size {N}" in rep.problems[0].message and "no longer stored" in rep.problems[0].message
    # With the cosignatures of the deleted checkpoints deleted too, the store alone cannot
    # tell: what is left is witnessed. The witnesses hold the larger size (witness check).
    attacker.run(("DELETE FROM docs WHERE collection=? AND id=?", ("cosignatures", f"{attacker.tid}:{N}")))
    rep, size = _verify(lg, vkeys, quorum=2)
    assert rep.ok and size == N - STEP


@pytest.mark.parametrize("store_kind", ["sqlite"])  # the CLI reads the data directory
def test_verify_cli_with_witnesses(witnessed: tuple[Ledger, list[str]]) -> None:
    lg, vkeys = witnessed
    data = str(lg.store.directory)  # type: ignore[attr-defined]
    ok = cli("verify", "--data", data, "--witness", vkeys[0], "--witness", vkeys[1], "--quorum", "2", "--json", check=False)
    assert ok.returncode == 0, ok.stderr
    assert f'"witnessed_size":{N}' in ok.stdout.replace(" ", "")
    bad = cli("verify", "--data", data, "--witness", vkeys[0], "--quorum", "2", check=False)
    assert bad.returncode == 2 and "quorum" in bad.stderr
    with open_reader(lg) as rd:
        log_key = rd.pubkey("acme")
    wrong = cli("verify", "--data", data, "--witness", log_key, check=False)
    assert wrong.returncode == 2 and "0x04" in wrong.stderr
    attacker = Attacker(lg)
    attacker.rewrite({7: attacker.leaf(7).replace(b'"i":7', b'"i":8')})
    attacker.replace_keys_and_resign(lg.log_id, lg.store.directory)  # type: ignore[attr-defined]
    forged = cli("verify", "--data", data, "--witness", vkeys[0], check=False)
    assert forged.returncode == 1 and "witness" in forged.stderr
