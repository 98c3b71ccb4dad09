"""Nothing acknowledged is lost on kill -9; the log verifies and grows on without a gap."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.log.hashing import leaf_hash

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 22


def _run_and_kill(data: Path, seed: int, rng: random.Random) -> list[tuple[str, int, str]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    # Wait until it has acknowledged something, then kill it at a random moment.
    first = proc.stdout.readline()
    time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    lines = [first.decode(), *rest.decode().splitlines()]
    acked = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3:  # a line cut by the kill is not an acknowledgement
            acked.append((parts[0], int(parts[1]), parts[2]))
    return acked


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(1234)
    acked: dict[tuple[str, int], str] = {}
    for round_ in range(KILLS):
        for tenant, index, lh in _run_and_kill(data, round_, rng):
            acked[(tenant, index)] = lh
        with Ledger.open(data, background=False) as lg:
            for (tenant, index), lh in acked.items():
                assert leaf_hash(lg.entry(index, tenant).leaf).hex() == lh
            report = lg.verify()
            assert report.ok, [p.render(t.tenant) for t in report.tenants for p in t.problems]
            # appending continues right after the last durable entry
            sizes = {h.tenant: h.size for h in lg.tenants()}
            r = lg.append([{"actor": {"id": "after"}, "action": "crash.after"}], tenant="t1")[0]
            assert r.index == sizes.get("t1", 0)
            acked[("t1", r.index)] = r.leaf_hash
    assert len(acked) > KILLS
