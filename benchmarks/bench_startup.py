"""Start-up time of auditkeep processes: the CLI, ``serve`` until /healthz answers, and the
imports of the children ``serve`` and an embedded ledger start.

    python benchmarks/bench_startup.py [--runs 10] [--baseline-src DIR]

Each command runs ``--runs`` times; the table gives the median wall time and the median CPU
time (user + system of the process and its children, from ``getrusage``; for ``serve``, of
the server and its children when /healthz first answers, from /proc). With
``--baseline-src`` (the ``src`` directory of another checkout, e.g. a ``git worktree`` of an
older commit) every run also runs the same command on that code, right before or after (the
order alternates), so both see the same load and the ratio new / baseline is of one run.

Commands (on a small data directory of 200 events made by ``auditkeep init`` + ``ingest``):
``auditkeep --help``, ``pubkey --tenant acme``, ``init`` (a new directory each run),
``verify``, ``serve`` to /healthz (and its CPU with its children 3 s later), and ``python -c "import M"`` for the children's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model, cpu_seconds

HERE = Path(__file__).resolve().parent.parent / "src"
CHILDREN = ("auditkeep.server.projection", "auditkeep.server.alerts_process", "auditkeep.ledger.follower")


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "AUDITKEEP_RATE_LIMIT": "0"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from auditkeep.cli.main import main; main()", *args]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def serve_to_healthz(data: Path, env: dict[str, str], settle: float = 0.0) -> tuple[float, float]:
    """Seconds from starting ``auditkeep serve`` to its first 200 on /healthz, and the CPU
    seconds the server and its children had used by then (with ``settle``: that many seconds
    later, when the children have started too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    proc = subprocess.Popen(
        [*_cli("serve", "--data", str(data), "--port", str(port), "--log-level", "warning")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client() as client:
            while True:
                try:
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"serve exited with {proc.returncode}")
                time.sleep(0.005)
        wall = time.perf_counter() - t
        if settle:
            time.sleep(settle)
        cpu = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return wall, cpu


def _importer(module: str, variants: dict[str, Path]) -> Callable[[str, int], tuple[float, float]]:
    return lambda v, i: timed([sys.executable, "-c", f"import {module}"], _env(variants[v]))


def make_data(root: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A data directory of 200 events for pubkey/verify, and one for serve."""
    data = root / "data"
    subprocess.run(_cli("init", "--data", str(data)), env=env, check=True, stdout=subprocess.DEVNULL)
    events = root / "events.jsonl"
    with events.open("w") as f:
        for i in range(200):
            f.write(json.dumps({"actor": {"id": f"user-{i % 7}"}, "action": "doc.read",
                                "resource": {"type": "doc", "id": str(i)}, "outcome": "success"}) + "\n")
    subprocess.run(_cli("ingest", "--data", str(data), "--tenant", "acme", str(events)),
                   env=env, check=True, stdout=subprocess.DEVNULL)
    served = root / "served"
    subprocess.run(_cli("init", "--data", str(served)), env=env, check=True, stdout=subprocess.DEVNULL)
    serve_to_healthz(served, env)  # the first start creates the admin key: not timed
    return data, served


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--baseline-src", type=Path, default=None, help="src/ of the code to compare with")
    args = ap.parse_args()
    variants = {"new": HERE}
    if args.baseline_src is not None:
        variants["baseline"] = args.baseline_src.resolve()
    root = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        dirs = {name: make_data(root / name, _env(src)) for name, src in variants.items()}
        cases: dict[str, object] = {
            "auditkeep --help": lambda v, i: timed(_cli("--help"), _env(variants[v])),
            "auditkeep pubkey --tenant acme": lambda v, i: timed(
                _cli("pubkey", "--data", str(dirs[v][0]), "--tenant", "acme"), _env(variants[v])),
            "auditkeep init (new dir)": lambda v, i: timed(
                _cli("init", "--data", str(root / v / f"init{i}")), _env(variants[v])),
            "auditkeep verify (200 events)": lambda v, i: timed(
                _cli("verify", "--data", str(dirs[v][0])), _env(variants[v])),
            "auditkeep serve → /healthz 200": lambda v, i: serve_to_healthz(dirs[v][1], _env(variants[v])),
            "auditkeep serve, CPU with children 3 s after /healthz": lambda v, i: serve_to_healthz(
                dirs[v][1], _env(variants[v]), settle=3.0),
            **{f"import {m} (child)": _importer(m, variants) for m in CHILDREN},
            "python -c pass (floor)": lambda v, i: timed([sys.executable, "-c", "pass"], _env(variants[v])),
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        load_before = os.getloadavg()
        for i in range(args.runs):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for case, run in cases.items():
                for v in order:
                    results.setdefault((case, v), []).append(run(v, i))  # type: ignore[operator]
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"python {platform.python_version()}, nproc {os.cpu_count()}, {cpu_model()}, "
          f"{args.runs} runs, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    head = "| command | wall ms (median) | CPU ms (median) |"
    if "baseline" in variants:
        head = "| command | baseline wall ms | new wall ms | baseline CPU ms | new CPU ms | new/baseline CPU |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for case in cases:
        nw = statistics.median(w for w, _ in results[(case, "new")]) * 1000
        nc = statistics.median(c for _, c in results[(case, "new")]) * 1000
        if "baseline" in variants:
            bw = statistics.median(w for w, _ in results[(case, "baseline")]) * 1000
            bc = statistics.median(c for _, c in results[(case, "baseline")]) * 1000
            print(f"| {case} | {bw:.0f} | {nw:.0f} | {bc:.0f} | {nc:.0f} | {nc / bc:.2f} |")
        else:
            print(f"| {case} | {nw:.0f} | {nc:.0f} |")


if __name__ == "__main__":
    main()
