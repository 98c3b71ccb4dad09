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


def _subcommands(group: click.Group) -> list[tuple[str, click.Command]]:
    """Every subcommand, those the CLI loads only when named included."""
    ctx = click.Context(group)
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    return [(name, cmd) for name, cmd in found if cmd is not None]


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in _subcommands(group):
        full = f"{prefix}{name}"
        out.append(full)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full + " ")
    return out


def test_every_command_is_documented() -> None:
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for name in _commands(cli):
        assert f"auditkeep {name}" in text, f"`auditkeep {name}` is not documented"


def test_the_documented_syslog_setting_loads_from_the_file(tmp_path: Path) -> None:
    """docs/configuration.md shows ``syslog`` as one comma-separated string; the file takes
    that as well as a TOML array (and the environment's comma-separated form)."""
    import re

    from auditkeep.config import load_settings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `syslog` |"))
    example = re.search(r"e\.g\. `([^`]+)`", row)
    assert example is not None, row
    urls = example.group(1)
    assert "," in urls
    want = [u.strip() for u in urls.split(",")]
    as_text = tmp_path / "text.toml"
    as_text.write_text(f'syslog = "{urls}"\npersonal_fields = "actor.ip, metadata.email"\n')
    s = load_settings(as_text, env={})
    assert s.syslog == want and s.personal_fields == ["actor.ip", "metadata.email"]
    as_array = tmp_path / "array.toml"
    as_array.write_text(f"syslog = {want!r}\n".replace("'", '"'))
    assert load_settings(as_array, env={}).syslog == want
    assert load_settings(None, env={"AUDITKEEP_SYSLOG": urls}).syslog == want


GLOBAL = {"--data", "--db", "--config", "--help"}


def _leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in _subcommands(group):
        if isinstance(cmd, click.Group):
            out += _leaves(cmd, f"{prefix}{name} ")
        else:
            out.append((f"{prefix}{name}", cmd))
    return out


def test_cli_md_covers_every_command_and_option() -> None:
    """docs/cli.md says it covers every command: each has a row there (`| \\`auditkeep NAME...`)
    and each of its options appears in its rows."""
    rows = [line for line in (ROOT / "docs" / "cli.md").read_text().splitlines() if line.startswith("| `auditkeep ")]
    missing: list[str] = []
    for name, cmd in _leaves(cli):
        mine = [r for r in rows if r.startswith(f"| `auditkeep {name} ") or r.startswith(f"| `auditkeep {name}`")]
        if not mine:
            missing.append(f"auditkeep {name}")
            continue
        text = " ".join(mine)
        for param in cmd.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt.startswith("--") and opt not in GLOBAL and opt not in text:
                        missing.append(f"auditkeep {name} {opt}")
    assert not missing, f"not in docs/cli.md: {', '.join(missing)}"
