"""The one directory fsync: durable entries, one error policy, written once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import auditkeep
from auditkeep.fsutil import fsync_dir


def test_fsync_dir_syncs_a_directory_and_raises_for_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    fsync_dir(tmp_path)
    fsync_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "missing")


def test_no_module_keeps_its_own_directory_fsync() -> None:
    package = Path(auditkeep.__file__).parent
    defining = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef) and "fsync" in node.name and "dir" in node.name
    )
    assert defining == ["fsutil.py"]
