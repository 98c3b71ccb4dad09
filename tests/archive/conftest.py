"""A real S3 HTTP endpoint for the archive tests: moto's server mode, as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from archive_support import REGION, S3Endpoint

from server_harness import free_port, wait_port


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Endpoint]:
    pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture
def s3(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """The endpoint, with the credentials boto3 reads from the environment set for it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return s3_server
