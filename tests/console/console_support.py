"""Helpers of the console tests: the CLI, accounts, signing in with a real browser."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server_harness import clean_env, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "correct horse battery"
ACCOUNTS = {"alice": "admin", "olga": "auditor", "vic": "viewer", "mallory": "viewer"}


def auditkeep(
    data: Path, *args: str, stdin: str | None = None, process: bool = True
) -> subprocess.CompletedProcess[str]:
    """``auditkeep ARGS --data DATA``: a real process, or (``process=False``, for setting up
    a fixture) its ``main()`` in this process."""
    if not process:
        got = run_cli([*args, "--data", str(data)], env=clean_env(), input=stdin.encode() if stdin else None)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args, "--data", str(data)],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def add_user(
    data: Path, tenant: str, username: str, role: str, password: str = PASSWORD, process: bool = False
) -> None:
    """An account (``users add`` in this process unless ``process``)."""
    r = auditkeep(data, "users", "add", "-t", tenant, "-u", username, "-r", role, "--password-stdin",
                  stdin=password + "\n", process=process)  # fmt: skip
    assert r.returncode == 0, r.stderr




def sign_in(page: object, url: str, username: str, tenant: str = "acme", password: str = PASSWORD) -> None:
    page.goto(url + "/ui/login")  # type: ignore[attr-defined]
    page.get_by_label("Tenant").fill(tenant)  # type: ignore[attr-defined]
    page.get_by_label("Username").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]


def ingest_until_checkpointed(srv: Any, events: list[dict[str, Any]], tenant: str = "acme") -> None:
    """``events`` through the API, then until a checkpoint (signed by the server's timer)
    covers them: a poll of ``/v1/checkpoints/latest``, which signs nothing when one exists."""
    with srv.client(srv.admin) as c:
        r = c.post("/v1/events", params={"tenant": tenant}, json=events)
        assert r.status_code == 200, r.text
        size = r.json()["receipts"][-1]["index"] + 1
        deadline = time.monotonic() + 60
        while int(c.get("/v1/checkpoints/latest", params={"tenant": tenant}).text.split("\n")[1]) < size:
            assert time.monotonic() < deadline, "no checkpoint covers the events"
            time.sleep(0.02)

