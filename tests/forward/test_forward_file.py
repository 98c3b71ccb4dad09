"""The forwarder on a real ledger with a file target: rotation, filters, formats, resuming at
its durable cursor; a target whose receiver is gone does not hold up another one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.config import ForwardSettings, load_settings
from auditkeep.forward.forwarder import Target, check_targets, cursor_name
from auditkeep.forward.sinks import drop_torn_line
from auditkeep.forward.syslog5424 import frame, message
from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.reader import Record


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"actor": {"id": f"u{i}"}, "action": "user.login" if i % 2 else "doc.read",
             "outcome": "failure" if i % 3 == 0 else "success", "metadata": {"i": i}} for i in range(start, start + n)]


def _lines(path: Path) -> list[dict[str, object]]:
    files = [*sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:])), path]
    return [json.loads(x) for f in files if f.exists() for x in f.read_text().splitlines()]


def _drain(t: Target) -> None:
    while t.step():
        pass


def _forward_all(settings: ForwardSettings, lg: Ledger) -> Target:
    """A forwarder run until it has sent everything there is, then closed (its stats stay)."""
    t = Target(settings, lg)
    try:
        _drain(t)
    finally:
        t.close()
    return t


def test_file_target_rotates_filters_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "fw" / "events.jsonl"
    fs = ForwardSettings(name="f", type="file", path=str(out), max_bytes=4096, keep=100, batch=50, actions=["user.*"])
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(300), "acme")
        lg.append(_events(10), "other")
        t = _forward_all(fs, lg)
        assert len(list(out.parent.glob("events.jsonl.*"))) > 3  # rotated
        got = _lines(out)
        assert [r["event"]["metadata"]["i"] for r in got if r["tenant"] == "acme"] == list(range(1, 300, 2))
        assert [r["event"]["metadata"]["i"] for r in got if r["tenant"] == "other"] == list(range(1, 10, 2))
        tid = lg.tenant_id("acme")
        assert lg.store.cursor(cursor_name("f"), tid)[0] == 300 and t.stats.lag == 0 and t.stats.sent == 155
        # a new forwarder (a restart) resumes at the saved cursor: nothing twice, nothing skipped
        lg.append(_events(20, 300), "acme")
        _forward_all(fs, lg)
        got = _lines(out)
        assert [r["event"]["metadata"]["i"] for r in got if r["tenant"] == "acme"] == list(range(1, 320, 2))


def test_a_line_cut_short_by_a_kill_is_dropped_and_its_record_sent_again(tmp_path: Path) -> None:
    """A forwarder killed while writing leaves part of a line after the last whole one; the
    next forwarder cuts it off before appending (else the next record is glued to it) and
    sends that record again from its cursor."""
    out = tmp_path / "fw" / "events.jsonl"
    fs = ForwardSettings(name="f", type="file", path=str(out), batch=50)
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(40), "acme")
        _forward_all(fs, lg)
        whole = out.read_bytes()
        last = whole.splitlines(keepends=True)[-1]
        # the kill: the last record's line only half written, its batch not counted as sent
        out.write_bytes(whole[: len(whole) - len(last)] + last[: len(last) // 2])
        tid = lg.tenant_id("acme")
        lg.store.set_cursor(cursor_name("f"), tid, 39)
        _forward_all(fs, lg)
        assert out.read_bytes() == whole
        assert [r["event"]["metadata"]["i"] for r in _lines(out)] == list(range(40))


def test_formats_and_tenant_and_outcome_filters(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(30), "acme")
        lg.append(_events(30), "other")
        for fmt in ("ocsf", "cef"):
            path = tmp_path / f"out.{fmt}"
            _forward_all(ForwardSettings(name=fmt, type="file", path=str(path), format=fmt, tenants=["other"], outcomes=["failure"]), lg)
            lines = path.read_text().splitlines()
            assert len(lines) == 10
            if fmt == "ocsf":
                assert {json.loads(x)["metadata"]["log_name"] for x in lines} == {"other"}
                assert {json.loads(x)["status_id"] for x in lines} == {2}
            else:
                assert all(x.startswith("CEF:0|auditkeep|") and "outcome=failure" in x for x in lines)


def test_bad_targets_are_refused_by_name(tmp_path: Path) -> None:
    for bad, words in (
        ({"name": "a", "type": "ftp"}, "type"),
        ({"name": "a", "type": "file", "format": "xml"}, "format"),
        ({"name": "a b", "type": "file"}, "name"),
        ({"name": "a", "type": "file", "outcomes": ["meh"]}, "outcome"),
        ({"name": "a", "type": "file", "batch": 0}, "batch"),
    ):
        with pytest.raises(ValueError, match=words):
            check_targets([ForwardSettings(**bad)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two targets"):
        check_targets([ForwardSettings(name="a", type="file"), ForwardSettings(name="a", type="nats")])
    cfg = tmp_path / "auditkeep.toml"
    cfg.write_text('[[forward]]\nname = "siem"\ntype = "syslog"\naddress = "127.0.0.1:6514"\nformat = "cef"\n')
    (t,) = load_settings(cfg, env={}).forward
    assert (t.name, t.type, t.format, t.address) == ("siem", "syslog", "cef", "127.0.0.1:6514")


def test_syslog_message_is_rfc5424_with_octet_counting(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data", background=False) as lg:
        (r,) = lg.append([{"actor": {"id": "a"}, "action": "user.login", "severity": "high", "time": "2026-01-01T00:00:00.123456789Z",
                           "source": {"host": "web 1"}}], "acme")
        rec: Record = lg.record_at(r.index, "acme")
    msg = message(rec, b'{"x":1}')
    framed = frame(msg)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(msg)
    head = msg.split(b" ", 7)
    assert head[0] == b"<107>1"  # facility 13 (log audit) * 8 + 3 (error, for high)
    assert head[1] == b"2026-01-01T00:00:00.123456Z"  # at most microseconds
    assert head[2] == b"web_1" and head[3] == b"auditkeep" and head[4] == b"-" and head[5] == b"user.login"
    assert msg.endswith(b'index="0"] \xef\xbb\xbf{"x":1}') and f'id="{rec.event.id}"'.encode() in msg


def test_the_documented_targets_load(tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "forwarding.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block is not None
    cfg = tmp_path / "auditkeep.toml"
    cfg.write_text(block.group(1))
    targets = load_settings(cfg, env={}).forward
    check_targets(targets)
    assert [t.type for t in targets] == ["splunk_hec", "syslog", "nats", "file"]


def test_on_each_store_exports_and_forwards_resume_and_the_lease_is_exclusive(make_ledger: Any, tmp_path: Path) -> None:
    """The same consumer on SQLite and PostgreSQL: an export reads every entry, a target
    resumes at its cursor after a restart, and a second forwarder cannot take the lease."""
    from auditkeep.export import Formatter, iter_chunks
    from auditkeep.forward.service import LEASE
    from auditkeep.query.filters import Filters

    lg = make_ledger(background=False)
    lg.append(_events(120), "acme")
    out = b"".join(c for _, c in iter_chunks(lg, "acme", Filters(), Formatter("jsonl"), page=50))
    assert [json.loads(x)["index"] for x in out.splitlines()] == list(range(120))
    ocsf = b"".join(c for _, c in iter_chunks(lg, "acme", Filters(outcome="failure"), Formatter("ocsf"), page=7))
    assert len(ocsf.splitlines()) == 40
    path = tmp_path / "fw.jsonl"
    fs = ForwardSettings(name="pg-or-sqlite", type="file", path=str(path), batch=50)
    _forward_all(fs, lg)
    lg.append(_events(30, 120), "acme")
    lease = lg.store.lease(LEASE)
    assert lease is not None
    try:
        again = make_ledger(background=False)  # a restart: another ledger on the same store
        assert again.store.lease(LEASE) is None  # one forwarder per store
        _forward_all(fs, again)
    finally:
        lease.release()
    assert [json.loads(x)["event"]["metadata"]["i"] for x in path.read_text().splitlines()] == list(range(150))


def test_a_batch_is_split_by_size_and_a_missing_secret_stops_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from receivers import HttpReceiver

    from auditkeep.config import ConfigError, Settings
    from auditkeep.forward.service import ForwardService

    monkeypatch.setenv("AUDITKEEP_TEST_HOOK_SECRET", "s3cret")
    http = HttpReceiver("unused", "s3cret")
    http.start()
    try:
        with Ledger.open(tmp_path / "data", background=False) as lg:
            lg.append([{"actor": {"id": "a"}, "action": "x.y", "metadata": {"pad": "p" * 900}} for _ in range(40)], "acme")
            hook = ForwardSettings(name="s", type="webhook", url=f"http://127.0.0.1:{http.port}/hook",
                                   secret_env="AUDITKEEP_TEST_HOOK_SECRET", max_request_bytes=4096)
            t = _forward_all(hook, lg)
            assert t.stats.sent == 40 and len(http.ids["/hook"]) == 40
            assert len(http.sizes) > 8 and max(http.sizes) <= 4096
            hec = ForwardSettings(name="h", type="splunk_hec", url="https://127.0.0.1:1/x", token_env="AUDITKEEP_TEST_UNSET_TOKEN")
            with pytest.raises(ConfigError, match="AUDITKEEP_TEST_UNSET_TOKEN"):
                ForwardService(lg, Settings(forward=[hec]))
    finally:
        http.stop()


def test_forward_status_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "auditkeep.toml").write_text(
        f'[[forward]]\nname = "arch"\ntype = "file"\npath = "{tmp_path / "f.jsonl"}"\ntenants = ["acme"]\n'
    )
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(30), "acme")
        lg.append(_events(5), "other")
        t = Target(ForwardSettings(name="arch", type="file", path=str(tmp_path / "f.jsonl"), batch=20, tenants=["acme"]), lg)
        try:
            assert t.step() == 20  # one batch: the cursor is at 20
        finally:
            t.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "forward", "status", "--json", "--data", str(tmp_path / "data")],
                       cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows == [{"target": "arch", "type": "file", "tenant": "acme", "position": 20, "size": 30, "lag": 10}]
    (tmp_path / "auditkeep.toml").write_text("")
    r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "forward", "status", "--data", str(tmp_path / "data")],
                       cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert r.returncode == 2 and b"no [[forward]] targets" in r.stderr and b"Traceback" not in r.stderr


def test_reset_cursor_sends_again_or_skips_and_is_recorded(tmp_path: Path) -> None:
    from auditkeep.forward.forwarder import RESET_ACTION, ResetRefused, reset_cursors
    from auditkeep.model.event import Submitter
    from auditkeep.store.sqlite_lease import file_lease

    out = tmp_path / "f.jsonl"
    fs = ForwardSettings(name="arch", type="file", path=str(out), batch=50)
    who = {"id": "cli:test", "type": "user"}
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(30), "acme")
        lg.append(_events(5), "other")
        _forward_all(fs, lg)
        assert len(_lines(out)) == 35
        done = reset_cursors(lg, fs, 10, who, Submitter("cli", "forward reset"), ["acme"])
        assert done == [("acme", 30, 10)]
        acme = lg.tenant_id("acme")
        assert lg.store.cursor(cursor_name("arch"), acme)[0] == 10
        assert lg.store.cursor(cursor_name("arch"), lg.tenant_id("other"))[0] == 5  # not asked for: unchanged
        rec = lg.record_at(30, "acme")  # the reset, recorded in the tenant's log after the new position
        assert rec.event.action == RESET_ACTION and rec.event.actor.id == "cli:test"
        assert rec.event.metadata == {"from": 30, "to": 10, "requested": "10"}
        assert rec.event.resource is not None and rec.event.resource.id == "arch"
        _forward_all(fs, lg)
        again = _lines(out)[35:]
        assert [r["index"] for r in again] == list(range(10, 31))  # 10..29 sent again, then the reset event
        assert again[-1]["event"]["action"] == RESET_ACTION
        # --end: skip all that is committed; --start: everything again
        assert reset_cursors(lg, fs, "end", who, Submitter("cli", None)) == [("acme", 31, 31), ("other", 5, 5)]
        assert lg.head("acme").size == 32  # the reset event itself lies past the new position
        assert reset_cursors(lg, fs, "start", who, Submitter("cli", None)) == [("acme", 31, 0), ("other", 5, 0)]
        assert lg.store.cursor(cursor_name("arch"), acme)[0] == 0
        # refused, nothing changed: beyond a log's head, a tenant it does not follow, a running forwarder
        with pytest.raises(ResetRefused, match="beyond the log of tenant 'other'"):
            reset_cursors(lg, fs, 20, who, Submitter("cli", None))
        with pytest.raises(ResetRefused, match="no log of tenant 'nobody'"):
            reset_cursors(lg, fs, 0, who, Submitter("cli", None), ["nobody"])
        held = lg.store.lease("forwarder")
        assert held is not None
        try:
            with pytest.raises(ResetRefused, match="running forwarder"):
                reset_cursors(lg, fs, 0, who, Submitter("cli", None))
        finally:
            held.release()
        assert lg.store.cursor(cursor_name("arch"), acme)[0] == 0
        free = file_lease(tmp_path / "data", "forwarder")  # the reset released its lease
        assert free is not None
        free.release()


def test_forward_reset_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "auditkeep.toml").write_text(f'[[forward]]\nname = "arch"\ntype = "file"\npath = "{tmp_path / "f.jsonl"}"\n')
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(30), "acme")
        t = Target(ForwardSettings(name="arch", type="file", path=str(tmp_path / "f.jsonl"), batch=20), lg)
        try:
            assert t.step() == 20
        finally:
            t.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}

    def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "forward", *args, "--data", str(tmp_path / "data")],
                              cwd=tmp_path, env=env, capture_output=True, timeout=120)

    r = cli("reset", "arch", "--to", "5", "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == [{"target": "arch", "tenant": "acme", "from": 20, "to": 5}]
    r = cli("status", "--json")
    assert json.loads(r.stdout) == {"target": "arch", "type": "file", "tenant": "acme", "position": 5, "size": 31, "lag": 26}
    for args, why in ((("reset", "arch"), b"exactly one of"), (("reset", "arch", "--start", "--end"), b"exactly one of"),
                      (("reset", "nope", "--start"), b"no [[forward]] target named 'nope'"),
                      (("reset", "arch", "--to", "99"), b"beyond the log of tenant 'acme'")):  # fmt: skip
        r = cli(*args)
        assert r.returncode == 2 and why in r.stderr and b"Traceback" not in r.stderr, (args, r.stderr)
    with Ledger.open(tmp_path / "data", background=False) as lg:
        assert lg.store.cursor(cursor_name("arch"), lg.tenant_id("acme"))[0] == 5  # refused resets changed nothing
        assert lg.head("acme").size == 31


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 64))
def test_drop_torn_line_keeps_exactly_the_whole_lines(data: bytes, chunk: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.jsonl"
        path.write_bytes(data)
        cut = drop_torn_line(path, chunk)
        kept = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    assert kept == whole and cut == len(data) - len(whole)
