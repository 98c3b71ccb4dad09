"""Issue 9, finding 5 on the ledger itself (both stores): every leaf names who appended it,
as the appending code established it; the ``auditkeep.`` action namespace is refused from
every caller but auditkeep's own code; leaves written before submitters keep verifying."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import run  # type: ignore[import-not-found]

import auditkeep
from auditkeep.ledger import Ledger
from auditkeep.ledger.append import Pending
from auditkeep.ledger.reader import NotFound
from auditkeep.log.hashing import leaf_hash
from auditkeep.model import Event, Submitter, ValidationError
from auditkeep.model.canonical import canonical_bytes
from auditkeep.model.validate import validate_event
from auditkeep.sources.intake import Intake
from auditkeep.sources.quarantine import Quarantine


def _leaf(lg: Ledger, index: int, tenant: str = "default") -> dict[str, object]:
    got: dict[str, object] = json.loads(lg.entry(index, tenant).leaf)
    return got


def _size(lg: Ledger, tenant: str = "default") -> int:
    try:
        return lg.head(tenant).size
    except NotFound:
        return 0


def test_the_submitter_is_in_the_leaf_and_its_hash(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    r = lg.append([{"actor": {"id": "alice"}, "action": "doc.read"}], submitter=Submitter("key", "k1"))[0]
    leaf = lg.entry(r.index).leaf
    assert json.loads(leaf)["submitter"] == {"kind": "key", "id": "k1"}
    assert leaf_hash(leaf).hex() == r.leaf_hash  # proofs cover it
    # the leaf is the canonical form of the event with the submitter in it: changing who
    # submitted changes the hash
    other = json.loads(leaf)
    other["submitter"] = {"kind": "key", "id": "k2"}
    assert leaf_hash(canonical_bytes(other)).hex() != r.leaf_hash
    # without one, the ledger's own (a program embedding it)
    r2 = lg.append([{"actor": {"id": "alice"}, "action": "doc.read"}])[0]
    assert _leaf(lg, r2.index)["submitter"] == {"kind": "embedded"}
    assert lg.record_at(r.index).event.submitter == Submitter("key", "k1")


def test_a_client_supplied_submitter_is_refused(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    forged = {"actor": {"id": "alice"}, "action": "doc.read", "submitter": {"kind": "server"}}
    with pytest.raises(ValidationError) as exc:
        lg.append([{"actor": {"id": "a"}, "action": "x.y"}, forged], submitter=Submitter("key", "k1"))
    assert exc.value.path == "submitter" and exc.value.position == 1
    assert _size(lg) == 0  # the whole batch was refused
    with pytest.raises(ValidationError):
        validate_event(Event(actor=auditkeep.model.Actor(id="a"), action="x", submitter=Submitter("cli")))


@pytest.mark.parametrize("action", ["auditkeep.key.create", "auditkeep.key.revoke", "auditkeep.alert.resolved", "auditkeep.x"])
def test_the_auditkeep_namespace_is_refused_from_callers(make_ledger: Callable[..., Ledger], action: str) -> None:
    lg = make_ledger()
    batch = [{"actor": {"id": "a"}, "action": "doc.read"}, {"actor": {"id": "admin"}, "action": action}]
    for call in (
        lambda: lg.append(batch),
        lambda: lg.append(batch, submitter=Submitter("key", "k1")),
        lambda: lg.append(batch, source="api", submitter=Submitter("key", "k1")),
        lambda: lg.record(actor={"id": "admin"}, action=action),
    ):
        with pytest.raises(ValidationError) as exc:
            call()
        assert exc.value.path == "action" and "reserved" in exc.value.message
    assert _size(lg) == 0
    # a look-alike outside the namespace is an ordinary action
    lg.append([{"actor": {"id": "a"}, "action": "auditkeepx.key.create"}, {"actor": {"id": "a"}, "action": "auditkeep"}])
    # auditkeep's own code paths may write it, and name themselves
    r = lg.append_own([{"actor": {"id": "admin"}, "action": action}], "default", Submitter("server", "adminkey"))[0]
    assert _leaf(lg, r.index)["submitter"] == {"kind": "server", "id": "adminkey"}


def test_search_filters_by_submitter(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    lg.append([{"actor": {"id": f"u{i}"}, "action": "doc.read"} for i in range(3)], submitter=Submitter("key", "k1"))
    lg.append([{"actor": {"id": "u9"}, "action": "doc.read"}], submitter=Submitter("key", "k2:x"))
    lg.append([{"actor": {"id": "u8"}, "action": "doc.read"}], submitter=Submitter("cli", "ingest"))

    def ids(flt: str) -> list[str]:
        return sorted(r.event.actor.id for r in lg.search(submitter=flt).items)

    assert ids("key:k1") == ["u0", "u1", "u2"]
    assert ids("key:k2:x") == ["u9"]  # an id may hold colons
    assert ids("key") == ["u0", "u1", "u2", "u9"]
    assert ids("cli") == ["u8"] and ids("cli:ingest") == ["u8"]
    assert ids("server") == [] and ids("key:k3") == []
    for bad in ("root", "key:", "", "Key:k1"):
        with pytest.raises(ValidationError) as exc:
            lg.search(submitter=bad)
        assert exc.value.path == "submitter"


def test_collectors_name_their_source(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    intake = Intake(lg, Quarantine(lg.store))
    res = intake.deliver("syslog", "default", [Event(actor=auditkeep.model.Actor(id="root"), action="ssh.login")], lost=2)
    assert _leaf(lg, res.receipts[0].index)["submitter"] == {"kind": "collector", "id": "syslog"}
    assert res.dropped_event is not None
    assert _leaf(lg, res.dropped_event.index)["submitter"] == {"kind": "collector", "id": "syslog"}
    # a server delivering a request names the request's key (or certificate) instead
    res = intake.deliver("otlp", "default", [Event(actor=auditkeep.model.Actor(id="x"), action="a.b")],
                         submitter=Submitter("key", "k7"))
    assert _leaf(lg, res.receipts[0].index)["submitter"] == {"kind": "key", "id": "k7"}
    # a mapped event in the reserved namespace goes to the quarantine, with the reason
    res = intake.deliver("otlp", "default", [Event(actor=auditkeep.model.Actor(id="x"), action="auditkeep.key.create")])
    assert not res.receipts and len(res.quarantined) == 1 and "reserved" in res.quarantined[0].reason


def test_leaves_without_a_submitter_keep_verifying(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    # a log written before leaves named their submitter (the sequencer given none)
    ev = Event(actor=auditkeep.model.Actor(id="old"), action="doc.read", id="01936f1e-6c3a-7000-8000-000000000001")
    exact = validate_event(ev).exact
    p = Pending("default", lg.tenant_id("default", create=True), [ev], [exact], [True], None)
    lg._writer.submit(p)
    old = p.future.result(30)[0]
    assert "submitter" not in _leaf(lg, old.index)
    new = lg.append([{"actor": {"id": "new"}, "action": "doc.read"}])[0]
    assert _leaf(lg, new.index)["submitter"] == {"kind": "embedded"}
    lg.checkpoint("default", new=True)
    rep = lg.verify("default").tenants[0]
    assert rep.ok, rep.problems
    # the same event sent again (an SDK's retry after the upgrade) is the stored one
    again = lg.append([{"actor": {"id": "old"}, "action": "doc.read", "id": ev.id}])[0]
    assert (again.index, again.leaf_hash) == (old.index, old.leaf_hash)
    assert lg.head("default").size == 2


def test_embedded_open_records_embedded(tmp_path: Path) -> None:
    with auditkeep.open(tmp_path / "data") as log:
        r = log.record(actor={"id": "alice"}, action="invoice.approve")
        assert _leaf(log, r.index)["submitter"] == {"kind": "embedded"}
        with pytest.raises(ValidationError):
            log.record(actor={"id": "alice"}, action="auditkeep.key.create")


def test_cli_ingest_records_cli_and_refuses_the_namespace(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text(json.dumps({"actor": {"id": "u1"}, "action": "doc.read"}) + "\n")
    r = run("ingest", "e.jsonl", "--tenant", "acme", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    made = run("keys", "create", "--tenant", "acme", "--scopes", "read", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (tmp_path / "bad.jsonl").write_text(json.dumps({"actor": {"id": "admin"}, "action": "auditkeep.key.create"}) + "\n")
    # ingest and keys create ran as real processes above; the rest through main() in this process
    bad = run("ingest", "bad.jsonl", "--tenant", "acme", cwd=tmp_path, process=False)
    assert bad.returncode == 2 and "reserved" in bad.stderr and "Traceback" not in bad.stderr
    shown = run("search", "--tenant", "acme", "--json", "--order", "oldest", cwd=tmp_path, process=False)
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(x)["event"] for x in shown.stdout.splitlines()]
    assert [(e["action"], e["submitter"]) for e in events] == [
        ("doc.read", {"kind": "cli", "id": "ingest"}),
        ("auditkeep.key.create", {"kind": "cli", "id": "keys create"}),
    ]
    only = run("search", "--tenant", "acme", "--json", "--submitter", "cli:ingest", cwd=tmp_path, process=False)
    assert [json.loads(x)["event"]["action"] for x in only.stdout.splitlines()] == ["doc.read"]
    wrong = run("search", "--tenant", "acme", "--submitter", "nobody", cwd=tmp_path, process=False)
    assert wrong.returncode == 2 and "submitter" in wrong.stderr and "Traceback" not in wrong.stderr
