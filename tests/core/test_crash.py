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


class _Zygote:
    """crash_child.py: forks the appending children, one per kill."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def run_and_kill(self, out: Path, seed: int, rng: random.Random) -> list[tuple[str, int, str]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seed} {out}\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline())
        # Wait until it has acknowledged something, then kill it at a random moment.
        deadline = time.monotonic() + 120
        while "\n" not in (out.read_text() if out.exists() else ""):
            assert time.monotonic() < deadline, "the child acknowledged nothing"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))  # ~700 events a round, as a fresh interpreter got in 0.4 s
        os.kill(pid, signal.SIGKILL)
        assert self.proc.stdout.readline() == "done\n"  # the zygote has reaped it
        acked = []
        for line in out.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:  # a line cut by the kill is not an acknowledgement
                acked.append((parts[0], int(parts[1]), parts[2]))
        return acked

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(1234)
    acked: dict[tuple[str, int], str] = {}
    zygote = _Zygote(data)
    try:
        for round_ in range(KILLS):
            for tenant, index, lh in zygote.run_and_kill(tmp_path / f"acks-{round_}", round_, rng):
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
    finally:
        zygote.close()
    assert len(acked) > KILLS
