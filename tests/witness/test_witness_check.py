"""``auditkeep witness check`` against a running log: consistent, then rolled back to a
backup, then forked from it."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from http_server_support import Server, event
from witness_support import WitnessProcess, cli, cli_here


def _wait(what: str, check: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def _cosigned(wdir: Path, origin: str) -> int:
    state = json.loads((wdir / "state.json").read_text())
    return int(state.get(origin, {}).get("size", 0))


def test_check_reports_consistent_then_rollback_then_fork(tmp_path: Path) -> None:
    data, wdir = tmp_path / "data", tmp_path / "w"
    cli_here("init", "--data", str(data), "--log-id", "chk")
    log_vkey = cli_here("pubkey", "--data", str(data), "--tenant", "acme").stdout.strip()
    origin = log_vkey.split("+", 1)[0]
    vkey = cli("witness", "init", "--data", str(wdir), "--name", "witness.test/chk").stdout.split("verifier key")[1].split()[0]
    cli("witness", "add-log", "--data", str(wdir), "--origin", origin, "--key", log_vkey)
    witness = WitnessProcess(wdir).start()
    config = tmp_path / "auditkeep.toml"
    config.write_text(f'checkpoint_interval = 0.2\nwitness_retry_max = 0.5\n[[witness]]\nurl = "{witness.url}"\nkey = "{vkey}"\n')

    def serve() -> Server:
        return Server(data, args=("--config", str(config)))

    def check(server: Server, key: str, process: bool = False) -> tuple[int, dict[str, object]]:
        """``witness check``; as a real process with ``process`` (the first time), in this
        process otherwise (a process spends ~0.5 s of CPU importing auditkeep)."""
        run = cli if process else cli_here
        r = run("witness", "check", "--data", str(wdir), "--log", server.url, "--key", key, "--json", check=False)
        assert r.returncode in (0, 1), r.stderr
        return r.returncode, json.loads(r.stdout)

    server = serve()
    try:
        key = server.key("acme", "ingest,read")
        with server.client(key) as c:
            assert c.post("/v1/events", json=[event(i) for i in range(20)]).status_code in (200, 201)
        _wait("first cosignature", lambda: _cosigned(wdir, origin) >= 20)
        code, result = check(server, key, process=True)
        assert code == 0 and result["verdict"] == "consistent"
    finally:
        server.stop()
    backup = tmp_path / "backup"
    shutil.copytree(data, backup)
    backup_size = _cosigned(wdir, origin)

    server = serve()
    try:
        with server.client(key) as c:
            assert c.post("/v1/events", json=[event(i) for i in range(20, 60)]).status_code in (200, 201)
        _wait("cosignature of the grown log", lambda: _cosigned(wdir, origin) >= backup_size + 40)
        code, result = check(server, key)
        assert code == 0 and result["verdict"] == "consistent"
        assert result["log_size"] == result["cosigned_size"] or result["log_size"] > result["cosigned_size"]
    finally:
        server.stop()
    grown = _cosigned(wdir, origin)

    # The operator restores the backup: the log is back at a smaller tree.
    shutil.rmtree(data)
    shutil.copytree(backup, data)
    server = serve()
    try:
        code, result = check(server, key)
        assert code == 1 and result["verdict"] == "rollback" and result["cosigned_size"] == grown
        # ...and grows other events past the size the witness holds: a fork.
        with server.client(key) as c:
            for batch in range(3):
                body = [event(1000 + batch * 40 + i, action="other.thing") for i in range(40)]
                assert c.post("/v1/events", json=body).status_code in (200, 201)

        def forked() -> bool:
            code, result = check(server, key)
            return result["verdict"] == "fork" and code == 1

        _wait("the restored log's checkpoint passes the cosigned size", forked)
        # The witness never cosigned the fork.
        assert _cosigned(wdir, origin) == grown
    finally:
        server.stop()
        witness.stop()
