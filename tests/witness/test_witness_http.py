"""``auditkeep witness`` as a process: init, add-log, serve over HTTP, and kill -9."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from witness_support import SimLog, WitnessProcess, cli, spec_check_cosignature

from auditkeep.log.checkpoint import Checkpoint
from auditkeep.witness import WitnessDir


@pytest.fixture
def log() -> SimLog:
    return SimLog("log.test/http")


@pytest.fixture
def witness(tmp_path: Path, log: SimLog) -> Iterator[tuple[WitnessProcess, str]]:
    wdir = tmp_path / "w"
    init = cli("witness", "init", "--data", str(wdir), "--name", "witness.test/http")
    vkey = init.stdout.split("verifier key", 1)[1].split()[0]
    cli("witness", "add-log", "--data", str(wdir), "--origin", log.origin, "--key", log.signer.verifier_key())
    proc = WitnessProcess(wdir).start()
    yield proc, vkey
    proc.stop()


def test_init_makes_a_private_key_and_refuses_to_replace_it(tmp_path: Path) -> None:
    wdir = tmp_path / "w"
    cli("witness", "init", "--data", str(wdir), "--name", "witness.test/a")
    assert (wdir / "witness.key").stat().st_mode & 0o777 == 0o600
    again = cli("witness", "init", "--data", str(wdir), "--name", "witness.test/a", check=False)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    bad = cli("witness", "add-log", "--data", str(wdir), "--origin", "o", "--key", "nonsense", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    missing = cli("witness", "serve", "--data", str(tmp_path / "none"), check=False)
    assert missing.returncode == 2 and "witness init" in missing.stderr


def test_add_checkpoint_over_http(witness: tuple[WitnessProcess, str], log: SimLog) -> None:
    proc, vkey = witness
    with httpx.Client(base_url=proc.url, timeout=30) as c:
        log.grow(7)
        r = c.post("/add-checkpoint", content=log.request(0))
        assert r.status_code == 200
        body = Checkpoint(log.origin, 7, log.root()).body()
        spec_check_cosignature(vkey, body, r.text)
        log.grow(3)
        r = c.post("/add-checkpoint", content=log.request(0))
        assert (r.status_code, r.text, r.headers["content-type"]) == (409, "7\n", "text/x.tlog.size")
        assert c.post("/add-checkpoint", content=log.request(7, size=5, proof=[])).status_code == 400
        assert c.post("/add-checkpoint", content=b"x" * (70 * 1024)).status_code == 413
        assert c.get("/add-checkpoint").status_code == 405
        r = c.post("/add-checkpoint", content=log.request(7))
        assert r.status_code == 200
        spec_check_cosignature(vkey, Checkpoint(log.origin, 10, log.root()).body(), r.text)


def test_a_second_server_on_the_same_directory_is_refused(witness: tuple[WitnessProcess, str]) -> None:
    proc, _ = witness
    second = cli("witness", "serve", "--data", str(proc.wdir), "--port", "1", check=False)
    assert second.returncode == 2 and "another witness process" in second.stderr


def test_kill_9_mid_request_never_loses_a_cosigned_size(
    witness: tuple[WitnessProcess, str], log: SimLog
) -> None:
    """Whatever the witness answered 200 for is in its state after a kill -9, and the state
    file is whole: it takes up again from the size it recorded."""
    proc, vkey = witness
    for _round in range(4):
        cosigned: list[int] = []
        stop = threading.Event()

        def submit(proc: WitnessProcess = proc, cosigned: list[int] = cosigned, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=proc.url, timeout=10) as c:
                old = WitnessDir(proc.wdir).state().get(log.origin)
                known = old.size if old else 0
                while not stop.is_set():
                    log.grow(3)
                    try:
                        r = c.post("/add-checkpoint", content=log.request(known))
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        spec_check_cosignature(vkey, Checkpoint(log.origin, len(log.hashes), log.root()).body(), r.text)
                        known = len(log.hashes)
                        cosigned.append(known)
                    else:
                        assert r.status_code == 409, r.text
                        known = int(r.text)

        t = threading.Thread(target=submit)
        t.start()
        deadline = time.monotonic() + 30
        while len(cosigned) < 5 + _round * 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        stop.set()
        t.join(timeout=30)
        assert cosigned, "the witness cosigned nothing before the kill"
        state = WitnessDir(proc.wdir).state()[log.origin]
        assert state.size >= max(cosigned)
        assert state.root == log.root(state.size)
        proc.start()
