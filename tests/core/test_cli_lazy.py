"""The CLI imports another face's module only when its command is asked for."""

from __future__ import annotations

import subprocess
import sys

import click

from auditkeep.cli import main as cli_main


def test_every_lazy_command_resolves_under_its_name() -> None:
    for name in cli_main._LAZY:
        command = cli_main._lazy_command(name)
        assert isinstance(command, click.Command), name
        assert command.name == name, (name, command.name)


def test_help_lists_every_command() -> None:
    ctx = click.Context(cli_main.cli)
    listed = cli_main.cli.list_commands(ctx)
    assert set(cli_main._LAZY) <= set(listed)
    assert {"init", "ingest", "search", "verify"} <= set(listed)
    assert listed == sorted(listed)


def test_a_core_command_does_not_import_the_server_or_console() -> None:
    code = (
        "import sys\n"
        "from auditkeep.cli.main import cli\n"
        "import click\n"
        "cli.get_command(click.Context(cli), 'search')\n"
        "heavy = [m for m in ('auditkeep.server.app', 'auditkeep.console', 'auditkeep.gateway') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
