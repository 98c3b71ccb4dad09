"""Issue 9's findings, as an attacker with write access to the store but not the signing key
would carry them out, on both stores: what verify reports, and that it never signs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from attacker import Attacker, open_reader  # type: ignore[import-not-found]

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.reader import NotFound
from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify import TenantReport
from auditkeep.log.note import NoteVerifier

N = 9000
STEP = 1000  # a checkpoint every STEP entries


@pytest.fixture
def log(make_ledger: Callable[..., Ledger]) -> Iterator[Ledger]:
    """9,000 events in tenant acme, signed at every 1,000; the writer is closed, as it would
    be when someone edits the files at rest."""
    lg = make_ledger(LedgerConfig(checkpoint_interval=3600), background=False)
    for start in range(0, N, STEP):
        lg.append(
            [
                {"actor": {"id": f"u{i % 40}", "name": "Bob" if i == 777 else f"User {i % 40}", "ip": "192.0.2.7"},
                 "action": "db.query", "metadata": {"i": i}}
                for i in range(start, start + STEP)
            ],
            "acme",
        )
        lg.checkpoint("acme", new=True)
    lg.close()
    yield lg


def _verify(lg: Ledger, trust: Trust | None = None, trusted: tuple[str, ...] = ()) -> TenantReport:
    with open_reader(lg) as rd:
        before = len(list(rd.store.checkpoints(rd.tenant_id("acme"))))
        rep = rd.verify("acme", trusted, trust=trust).tenants[0]
        after = len(list(rd.store.checkpoints(rd.tenant_id("acme"))))
    assert before == after  # verify never signs
    return rep


def _kinds(rep: TenantReport) -> list[str]:
    return [p.kind for p in rep.problems]


def test_intact_log_verifies(log: Ledger) -> None:
    rep = _verify(log)
    assert rep.ok and rep.signed_size == N and not rep.warnings
    assert rep.sealed_checked == 2 * N  # actor.name and actor.ip of every event


# -- finding 1: personal-field plaintext -------------------------------------------------------


@pytest.mark.parametrize("field,forged", [("actor.name", "Mallory"), ("actor.ip", "198.51.100.9")])
def test_edited_personal_field_is_named_with_its_index(log: Ledger, field: str, forged: str) -> None:
    attacker = Attacker(log)
    plain = json.loads(attacker.sealed(777))
    plain[field] = forged
    attacker.set_sealed(777, json.dumps(plain).encode())
    with open_reader(log) as rd:
        assert getattr(rd.record_at(777, "acme").event.actor, field.split(".")[1]) == forged  # what show would print
    rep = _verify(log)
    assert not rep.ok and _kinds(rep) == ["sealed"]
    assert rep.first is not None and rep.first.index == 777 and field in rep.first.message


def test_personal_field_with_its_salt_removed_is_not_trusted(log: Ledger) -> None:
    attacker = Attacker(log)
    attacker.set_sealed(777, json.dumps({"actor.name": "Mallory", "actor.ip": "192.0.2.7"}).encode())
    attacker.run(("UPDATE subjects SET salt=NULL WHERE tenant_id=? AND subject=?", (attacker.tid, "u17")))
    rep = _verify(log)
    assert not rep.ok and {p.index for p in rep.problems} == set(range(17, N, 40))
    assert all(p.kind == "sealed" and "no salt" in p.message for p in rep.problems)


def test_erased_personal_fields_are_reported_as_erased(log: Ledger) -> None:
    attacker = Attacker(log)
    attacker.run(("UPDATE entries SET sealed=NULL WHERE tenant_id=? AND subject=?", (attacker.tid, "u3")))
    attacker.run(("UPDATE subjects SET salt=NULL WHERE tenant_id=? AND subject=?", (attacker.tid, "u3")))
    rep = _verify(log)
    assert rep.ok
    erased_events = len(range(3, N, 40))
    assert rep.erased == 2 * erased_events and rep.sealed_checked == 2 * (N - erased_events)


# -- finding 2: verify signed a forgery --------------------------------------------------------


def test_forged_leaf_with_rebuilt_tree_and_no_checkpoints(log: Ledger) -> None:
    attacker = Attacker(log)
    forged = attacker.leaf(4242).replace(b'"i":4242', b'"i":4243')
    attacker.rewrite({4242: forged})
    attacker.delete_checkpoints_above(0)
    rep = _verify(log)  # asserts that nothing is signed
    assert not rep.ok and "checkpoint" in _kinds(rep)
    assert any("no checkpoint of that size" in p.message for p in rep.problems)
    # Covering the tracks in the head too leaves an unsigned log: a warning, an error on demand.
    attacker.set_checkpointed_size(0)
    rep = _verify(log)
    assert rep.ok and [w.kind for w in rep.warnings] == ["unsigned"] and rep.signed_size == 0
    assert f"none of the {N} entries" in rep.warnings[0].message
    with open_reader(log) as rd:
        strict = _verify(log, rd.stored_trust(require_signed=True))
    assert not strict.ok and _kinds(strict) == ["unsigned"]


# -- finding 3: the variants that passed -------------------------------------------------------


def test_edit_past_the_checkpoints_left(log: Ledger) -> None:
    attacker = Attacker(log)
    attacker.delete_checkpoints_above(6000)
    attacker.rewrite({8000: attacker.leaf(8000).replace(b'"i":8000', b'"i":1')})
    rep = _verify(log)
    assert not rep.ok and _kinds(rep) == ["checkpoint"]  # the head still says signed at 9000
    attacker.set_checkpointed_size(6000)
    rep = _verify(log)
    assert rep.ok and rep.signed_size == 6000
    assert [w.message for w in rep.warnings] == ["3000 entries after the newest checkpoint at size 6000 are not signed"]
    with open_reader(log) as rd:
        strict = _verify(log, rd.stored_trust(require_signed=True))
    assert not strict.ok and strict.first is not None and strict.first.index == 6000


def test_truncated_tail_with_head_and_checkpoints_fixed(log: Ledger) -> None:
    with open_reader(log) as rd:
        handed_out = rd.checkpoint("acme")  # saved by an auditor before the attack
    attacker = Attacker(log)
    attacker.rewrite(keep=7000)
    attacker.delete_checkpoints_above(7000)
    rep = _verify(log)
    assert not rep.ok and _kinds(rep) == ["checkpoint"]  # the head still claims size 9000
    attacker.set_checkpointed_size(7000)
    assert _verify(log).ok  # consistent with itself and its remaining signatures...
    rep = _verify(log, trusted=(handed_out,))
    assert not rep.ok and _kinds(rep) == ["rollback"] and rep.first is not None and rep.first.index == 7000


def test_newest_checkpoints_deleted_while_the_head_says_signed(log: Ledger) -> None:
    Attacker(log).delete_checkpoints_above(7000)
    rep = _verify(log)
    assert not rep.ok and _kinds(rep) == ["checkpoint"] and "size 9000" in rep.problems[0].message


def test_replaced_key_and_resigned_checkpoints_caught_with_the_real_key(log: Ledger) -> None:
    with open_reader(log) as rd:
        real = NoteVerifier.from_vkey(rd.pubkey())  # kept elsewhere by the auditor
    attacker = Attacker(log)
    attacker.rewrite({100: attacker.leaf(100).replace(b'"i":100', b'"i":101')})
    forged_vkey = attacker.replace_keys_and_resign(log.log_id, getattr(log.store, "directory", None))
    with open_reader(log) as rd:
        assert rd.pubkey() == forged_vkey
        stored = rd.stored_trust()
    rep = _verify(log, stored)
    assert rep.ok and stored.keys_from_store  # the store vouches for itself (and the report says so)...
    rep = _verify(log, Trust.given([real]))  # ...the key held elsewhere does not
    assert not rep.ok and set(_kinds(rep)) == {"checkpoint"} and len(rep.problems) == N // STEP
    assert "no signature from a known key" in rep.problems[0].message


# -- finding 4: readers need no key and never sign ---------------------------------------------


def test_a_proof_no_checkpoint_covers_is_refused_not_signed(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger(LedgerConfig(checkpoint_interval=3600), background=False)
    lg.append([{"actor": {"id": "a"}, "action": "x"} for _ in range(10)], "acme")
    lg.checkpoint("acme", new=True)
    lg.append([{"actor": {"id": "a"}, "action": "x"} for _ in range(5)], "acme")
    with open_reader(lg) as rd:
        with pytest.raises(NotFound, match="no stored checkpoint covers 13 entries \\(the latest is at size 10\\)"):
            rd.prove_inclusion(12, "acme")
        assert rd.prove_inclusion(9, "acme").tree_size == 10
        assert len(list(rd.store.checkpoints(rd.tenant_id("acme")))) == 1
        with pytest.raises(Exception, match="read-only"):
            rd.store.set_meta("x", "y")
