"""Shared fixtures for source tests: the real sample data (see tests/testdata/MANIFEST.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testdata_path import require_testdata, testdata_dir

__all__ = ["testdata_dir"]


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The testdata directory (``kubernetes/``, ``cloudtrail/``, ``auditd/``, ...)."""
    return require_testdata()
