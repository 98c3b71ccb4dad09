"""``auditkeep collect auditd`` against the kernel's audit subsystem and a real auditd.

The test runs auditd (``auditd -n`` with a configuration of its own, writing its log in a
temporary directory; or the auditd already running, reading its log), installs a rule set
keyed to this run with ``auditctl`` and always removes it, makes a process do what the
rules watch (an execve whose argument fills several EXECVE records, an execve refused with
EACCES, a connect and an accept on 127.0.0.1, a write to a watched file), then delivers the
log to a real ``auditkeep serve`` with ``auditkeep collect auditd`` and checks what arrived:
every event exactly once, mapped as the kernel wrote it, and ``verify`` passes.

The audit subsystem belongs to the whole machine. Runs of this test on one machine take
turns (a lock file); rules only match the test's own processes; the daemon it starts is
stopped and the kernel's enabled flag put back. Where the kernel refuses audit control
(a container without CAP_AUDIT_CONTROL, audit=0), the test is skipped with the kernel's
answer, in CI too: only a facility that is there and does not work fails it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sources_e2e_support import Server, cli, env

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOCK = Path("/tmp/auditkeep-kernel-audit-test.lock")
LONG_ARG = "b" + "a" * 16384  # more than two EXECVE records' worth (about 7.5 KiB each)
AUDITD_CONF = """\
local_events = yes
write_logs = yes
log_file = {log}
log_group = root
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 1
max_log_file = 64
num_logs = 2
max_log_file_action = ROTATE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
name_format = NONE
plugin_dir = {plugins}
end_of_event_timeout = 2
"""
# What the process under audit does, each step once its rules are in (a line on stdin).
DRIVER = r"""
import socket, subprocess, sys
long_arg, refused, watched = sys.argv[1:4]
sys.stdin.readline()
subprocess.run(["/usr/bin/true", long_arg, "second"], check=True)
try:
    subprocess.run([refused])
except PermissionError:
    pass
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
conn.close(); c.close(); srv.close()
with open(watched, "a") as f:
    f.write("changed\n")
print("done", flush=True)
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def _status() -> dict[str, str]:
    """``auditctl -s`` as a dict; skip (or fail) when the kernel refuses audit control."""
    if shutil.which("auditctl") is None or shutil.which("auditd") is None:
        if IN_CI:
            pytest.fail("auditd is not installed (.ci/run installs the Debian package auditd)")
        pytest.skip("auditd is not installed (apt-get install auditd)")
    got = _run("auditctl", "-s")
    if got.returncode != 0:
        # The facility is not there for us: say exactly what the kernel answered.
        pytest.skip(f"the kernel refuses audit control here: auditctl -s: {(got.stderr or got.stdout).strip()}")
    status = dict(line.split(" ", 1) for line in got.stdout.splitlines() if " " in line)
    if "enabled" not in status:
        # In a user namespace the kernel answers nothing, and auditctl exits 0.
        pytest.skip(f"the kernel gives no audit status here (auditctl -s printed {got.stdout.strip()!r}): "
                    "no audit netlink for this namespace")
    if status.get("enabled") == "2":
        pytest.skip("audit rules are locked (enabled 2, set by auditctl -e 2): rules cannot be installed")
    return status


@contextlib.contextmanager
def _turn() -> Iterator[None]:
    """One run at a time on this machine: the kernel has one audit daemon and one rule list."""
    with LOCK.open("a") as fh:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another run held {LOCK} for 10 minutes")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log_of_running_auditd(pid: int) -> Path:
    """The log file of the auditd already running (from its -c directory, else /etc/audit)."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    conf = Path("/etc/audit/auditd.conf")
    if b"-c" in args and args.index(b"-c") + 1 < len(args):
        given = Path(args[args.index(b"-c") + 1].decode())
        conf = given / "auditd.conf" if given.is_dir() else given
    found = re.search(r"^\s*log_file\s*=\s*(\S+)", conf.read_text(), re.M)
    return Path(found.group(1) if found else "/var/log/audit/audit.log")


@contextlib.contextmanager
def _auditd(tmp: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes] | None]]:
    """(the log file, our auditd or None): a running auditd is used as it is; else one is
    started for the test and stopped after it, and the kernel's enabled flag restored."""
    status = _status()
    pid = int(status.get("pid", "0"))
    if pid and Path(f"/proc/{pid}").exists():
        yield _log_of_running_auditd(pid), None
        return
    conf = tmp / "auditd-conf"
    (conf / "plugins.d").mkdir(parents=True)
    log = tmp / "auditd-log" / "audit.log"
    log.parent.mkdir(mode=0o700)
    (conf / "auditd.conf").write_text(AUDITD_CONF.format(log=log, plugins=conf / "plugins.d"))
    (conf / "auditd.conf").chmod(0o600)
    err = (tmp / "auditd.err").open("wb")
    proc = subprocess.Popen(["auditd", "-n", "-c", str(conf)], stdout=err, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while _status().get("pid") != str(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"auditd did not start (exit {proc.poll()}): {(tmp / 'auditd.err').read_text()}")
            time.sleep(0.1)
        yield log, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()
        _run("auditctl", "-e", status.get("enabled", "0"))


@contextlib.contextmanager
def _rules(key: str, driver: int, watched: Path) -> Iterator[None]:
    """The run's rules, keyed ``key``, matching only the driver process and its children;
    removed afterwards whatever happens."""
    arch = "b64" if platform.architecture()[0] == "64bit" else "b32"
    rules = [
        ["-a", "always,exit", "-F", f"arch={arch}", "-S", "execve", "-F", f"ppid={driver}", "-k", key],
        ["-a", "always,exit", "-F", f"arch={arch}", "-S", "connect,accept,accept4", "-F", f"pid={driver}", "-k", key],
        ["-w", str(watched), "-p", "wa", "-k", key],
    ]
    try:
        for rule in rules:
            got = _run("auditctl", *rule)
            assert got.returncode == 0, f"auditctl {' '.join(rule)}: {got.stderr or got.stdout}"
        yield
    finally:
        _run("auditctl", "-D", "-k", key)
        left = _run("auditctl", "-l").stdout
        assert key not in left, f"rules of {key} were not removed: {left}"


def _serials_with_key(log: Path, key: str) -> set[tuple[str, str]]:
    """(time, serial) of every event whose records carry the rule key, read from the raw log."""
    out = set()
    for line in log.read_text(errors="replace").splitlines():
        if f'key="{key}"' in line:
            m = re.search(r"msg=audit\((\d+\.\d+):(\d+)\)", line)
            assert m is not None
            out.add((m.group(1), m.group(2)))
    return out


def _wait_for(log: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never reached {log}"
        time.sleep(0.1)


def _collect(server: Server, key: str, log: Path, state: Path) -> None:
    got = subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", "collect", "auditd", str(log), "--to", server.url,
         "--key", key, "--tenant", "kernel", "--state", str(state), "--host", "kernel-test", "--once"],
        capture_output=True, env=env(), timeout=120,
    )
    out = got.stdout.decode() + got.stderr.decode()
    assert got.returncode == 0 and "Traceback" not in out, out


def test_collect_auditd_from_the_kernel(tmp_path: Path) -> None:
    run = f"ak{uuid.uuid4().hex[:10]}"
    refused = tmp_path / "not-executable"
    refused.write_text("#!/bin/sh\necho never\n")
    refused.chmod(0o644)
    watched = tmp_path / "watched.conf"
    watched.write_text("")
    with _turn(), _auditd(tmp_path) as (log, _daemon):
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, LONG_ARG, str(refused), str(watched)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            with _rules(run, driver.pid, watched):
                assert driver.stdin is not None and driver.stdout is not None
                driver.stdin.write("go\n")
                driver.stdin.flush()
                assert driver.stdout.readline().strip() == "done"
                assert driver.wait(30) == 0
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
            for pipe in (driver.stdin, driver.stdout):
                if pipe is not None:
                    pipe.close()
        # the removal of the rules is itself audited, with the key: the last line of the run
        _wait_for(log, f'op=remove_rule key="{run}"')
        time.sleep(0.3)  # auditd flushes incrementally; give the last records a moment
        raw = tmp_path / "audit.log"
        shutil.copy(log, raw)  # the run's log, fixed (a shared auditd may write on)

    expected = _serials_with_key(raw, run)
    server = Server(tmp_path / "srv" / "data")
    try:
        key = server.key("kernel", "ingest")
        state = tmp_path / "collect.state"
        _collect(server, key, raw, state)
        events = [e for e in server.search("kernel") if e["action"].startswith("auditd.")]
        ours = [e for e in events if run in e["metadata"].get("keys", [])]
        # every event of the run, each once
        assert len({e["id"] for e in events}) == len(events)
        assert {(e["time"], str(e["metadata"]["auditd"]["sequence"])) for e in ours} and len(ours) == len(expected)
        assert {str(e["metadata"]["auditd"]["sequence"]) for e in ours} == {s for _, s in expected}
        # run again, and again from a lost state: nothing is stored twice
        _collect(server, key, raw, state)
        _collect(server, key, raw, tmp_path / "fresh.state")
        again = [e for e in server.search("kernel") if e["action"].startswith("auditd.")]
        assert sorted(e["id"] for e in again) == sorted(e["id"] for e in events)
        _check_mapping(ours, refused, watched)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()
    done = cli("verify", data=server.data)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def _check_mapping(ours: list[dict[str, Any]], refused: Path, watched: Path) -> None:
    by_action: dict[str, list[dict[str, Any]]] = {}
    for e in ours:
        by_action.setdefault(e["action"], []).append(e)
    shown = json.dumps(sorted(by_action), indent=1)
    # the long command line: its EXECVE records are one, every argument whole
    execs = by_action.get("auditd.syscall.execve", [])
    (long_exec,) = [e for e in execs if e["outcome"] == "success" and e["metadata"].get("argv", "").startswith("/usr/bin/true b")] or [None]
    assert long_exec is not None, shown
    (record,) = [r for r in long_exec["metadata"]["auditd"]["records"] if r["type"] == "EXECVE"]
    assert record["a2"] == "second" and record["argc"] == "3"
    assert f"argv: {len('/usr/bin/true ') + len(LONG_ARG) + len(' second')} characters" in long_exec["metadata"]["truncated"]
    assert long_exec["resource"] == {"type": "executable", "name": "/usr/bin/true"}
    # the refused execve: the refused file is the resource, the caller's exe stays in metadata
    (denied,) = [e for e in execs if e["outcome"] == "failure"]
    assert denied["reason"] == "EACCES" and denied["resource"]["name"] == str(refused)
    assert denied["metadata"]["exe"] != str(refused)
    # the connection, both ways
    (connect,) = by_action.get("auditd.syscall.connect", [])
    assert connect["metadata"]["socket"]["direction"] == "egress" and connect["metadata"]["socket"]["addr"] == "127.0.0.1"
    accepts = by_action.get("auditd.syscall.accept4", []) + by_action.get("auditd.syscall.accept", [])
    assert [a["metadata"]["socket"]["direction"] for a in accepts] == ["ingress"], shown
    # the watched file
    assert any(e.get("resource") == {"type": "file", "name": str(watched)} for e in ours), shown
    # the ENRICHED log names the account: the actor has a name
    assert all(e["actor"].get("name") for e in ours if e["action"].startswith("auditd.syscall."))
    assert {e["source"]["host"] for e in ours} == {"kernel-test"}
