"""The SDK's public names, and that importing auditkeep does not load the HTTP stack."""

from __future__ import annotations

import subprocess
import sys

import auditkeep
import auditkeep.client
from auditkeep.client import AsyncAuditLog, AsyncClient, AuditLog, Client
from auditkeep.client.protocol import AsyncAuditLog as ProtocolAsync


def test_top_level_names() -> None:
    assert auditkeep.Client is Client
    assert auditkeep.AsyncClient is AsyncClient
    assert auditkeep.context is auditkeep.client.context
    for name in ("Client", "AsyncClient", "context"):
        assert name in auditkeep.__all__
    for name in auditkeep.client.__all__:
        assert getattr(auditkeep.client, name) is not None


def test_protocols_are_runtime_checkable() -> None:
    assert AsyncAuditLog is ProtocolAsync
    assert issubclass(Client, AuditLog)
    assert issubclass(auditkeep.Ledger, AuditLog)
    assert issubclass(AsyncClient, AsyncAuditLog)


def test_import_stays_light() -> None:
    code = (
        "import sys, auditkeep, auditkeep.integrations\n"
        "with auditkeep.context(actor='a'): pass\n"
        "assert 'httpx' not in sys.modules, 'httpx loaded'\n"
        "auditkeep.Client\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
