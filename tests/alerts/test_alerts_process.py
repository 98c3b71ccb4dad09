"""The alert runner of `serve` in a child process: the server's commits wake it through a
pipe, and its own commits (alert events) reach the server's commit listeners."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from alerts_live_support import wait_for

from auditkeep.config import AlertSettings, Settings, open_ledger
from auditkeep.server.alerts_process import AlertProcess

RULES = """\
rules:
  - id: secret-read
    name: Production secret read
    severity: high
    match: {action: secrets.read}
    group_by: [actor.id]
"""


def event(actor: str) -> dict[str, object]:
    return {"actor": {"id": actor}, "action": "secrets.read", "resource": {"type": "secret", "id": "prod/db"}}


def test_runner_child_is_woken_by_commits_and_reports_its_own(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yml").write_text(RULES)
    # Without a wake the runner would look at the log only once an hour.
    settings = Settings(
        data=str(tmp_path / "data"),
        rules_dir=str(rules),
        alerts=AlertSettings(poll_interval=3600, rules_interval=3600, tick_interval=3600),
    )
    lg = open_ledger(settings, create=True, background=False)
    relayed: list[set[int]] = []
    lg.on_commit(lambda tids: relayed.append(tids) if threading.current_thread().name == "auditkeep-alerts-relay" else None)
    child = AlertProcess(settings, lg)
    try:
        assert child._proc.pid != os.getpid()
        lg.append([event("alice")], tenant="acme")
        # the runner's first look finds it (this also shows the child is up)
        wait_for(lambda: lg.head("acme").size == 2, timeout=120, what="the first alert event")
        acme = lg.tenant_id("acme")
        wait_for(lambda: {acme} in relayed, what="the child's commit relayed to the server's listeners")
        # the runner is idle now, for an hour unless a commit wakes it
        lg.append([event("bob")], tenant="acme")
        wait_for(lambda: lg.head("acme").size == 4, timeout=120, what="the alert event of a woken runner")
        actions = [r.event.action for r in lg.records(0, 4, "acme")]
        assert actions[0] == actions[2] == "secrets.read"
        assert actions[1].startswith("auditkeep.alert") and actions[3].startswith("auditkeep.alert")
    finally:
        child.stop()
        lg.close()
    assert child._proc.returncode == 0


def test_a_child_that_ends_on_its_own_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lg = open_ledger(Settings(data=str(tmp_path / "data")), create=True, background=False)
    # the child cannot open a data directory that does not exist, and exits
    child = AlertProcess(Settings(data=str(tmp_path / "missing")), lg)
    try:
        with caplog.at_level(logging.WARNING, logger="auditkeep.server.alerts"):
            wait_for(lambda: "alert runner process ended" in caplog.text, timeout=120, what="the warning")
        assert child._proc.returncode not in (None, 0)
        child.wake()  # a wake of an ended child is harmless
        lg.append([event("carol")], tenant="acme")
    finally:
        child.stop()
        lg.close()
