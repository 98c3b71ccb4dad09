"""Every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from auditkeep.cli.main import cli
from auditkeep.config import LimitSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for f in msgspec.structs.fields(Settings):
        if f.name != "limits":
            assert f"`{f.name}`" in doc or f"`{f.name}`," in doc, f.name
    for f in msgspec.structs.fields(LimitSettings):
        assert f"`limits.{f.name}`" in doc, f.name


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append(full)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full + " ")
    return out


def test_every_command_is_documented() -> None:
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for name in _commands(cli):
        assert f"auditkeep {name}" in text, f"`auditkeep {name}` is not documented"
