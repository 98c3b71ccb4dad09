"""An embedded ledger follows its search projection in a child process, never in a thread of
the appending interpreter, and the child never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from auditkeep.ledger import Ledger


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(cond: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(cond())  # type: ignore[operator]


def test_the_projection_is_kept_by_a_child_not_a_thread(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        assert lg._follower is not None
        proc = lg._follower._proc
        assert proc is not None and _alive(proc.pid)
        assert not [t for t in threading.enumerate() if t.name == "auditkeep-projector"]
        lg.append([{"actor": {"id": f"u{i}"}, "action": "x.y"} for i in range(300)], tenant="acme")
        # No search forces it: the child alone brings the projection up to the head.
        assert _wait(lambda: lg.projection_lag("acme") == 0)
        assert lg.store.projection_position(lg.tenant_id("acme")) == 300
    assert proc.returncode == 0  # closing the ledger ended the child


def test_without_background_there_is_no_child(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data", background=False) as lg:
        assert lg._follower is None
        lg.append([{"actor": {"id": "a"}, "action": "x.y"}])
        assert lg.projection_lag("default") == 1
        assert [r.event.actor.id for r in lg.search().items] == ["a"]  # a search catches up


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from auditkeep.ledger import Ledger
        lg = Ledger.open(sys.argv[1])
        lg.append([{"actor": {"id": "a"}, "action": "x.y"}])
        print(lg._follower._proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.communicate()
    assert _wait(lambda: not _alive(child))
    if _alive(child):  # pragma: no cover - only when the test fails
        os.kill(child, signal.SIGKILL)
