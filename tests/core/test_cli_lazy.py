"""The CLI imports another face's module only when its command is asked for."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

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


def test_each_listed_summary_is_the_first_paragraph_of_the_commands_help() -> None:
    for name, (_, _, summary) in cli_main._LAZY.items():
        command = cli_main._lazy_command(name)
        assert command is not None
        # --help shortens this text as click would the command's own (no short_help, shown)
        assert command.short_help is None and not command.hidden and not command.deprecated, name
        assert " ".join((command.help or "").split("\n\n")[0].split()) == summary, name


@pytest.mark.parametrize("columns", ["60", "100", "250"])
def test_help_is_what_click_writes_with_every_command_loaded(columns: str) -> None:
    env = {**os.environ, "COLUMNS": columns}
    run = [sys.executable, "-c"]
    main = "import sys; sys.argv = ['auditkeep', '--help']; from auditkeep.cli.main import main; main()"
    loaded = ("from auditkeep.cli import main as m\n"
              "for name in m._LAZY: m._lazy_command(name)\n" + main.replace("; ", "\n"))
    listed = subprocess.run([*run, main], env=env, capture_output=True, text=True, check=True).stdout
    reference = subprocess.run([*run, loaded], env=env, capture_output=True, text=True, check=True).stdout
    assert listed == reference
    assert "verify-bundle" in listed and "Commands:" in listed
