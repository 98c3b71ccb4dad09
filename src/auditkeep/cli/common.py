"""What every command shares: global options (also accepted after the subcommand), opening
the ledger, and printing."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec
from rich.console import Console

from auditkeep.config import Settings, load_settings, open_ledger, open_reader
from auditkeep.model.event import Submitter

if TYPE_CHECKING:  # opened when a command runs: loading them costs every command's start
    from auditkeep.ledger.ledger import Ledger
    from auditkeep.ledger.reader import LogReader

F = TypeVar("F", bound=Callable[..., Any])

MAX_INDEX = 2**63 - 1  # what both stores hold as a log index or tree size
INDEX = click.IntRange(0, MAX_INDEX)
TREE_SIZE = click.IntRange(1, MAX_INDEX)



def _width(stream: Any) -> int | None:
    """Rich's width for a terminal (or $COLUMNS); piped into a file or another program,
    tables must not be cut at 80 columns, so give them all the room they need."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return 100_000


out = Console(soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, soft_wrap=True, width=_width(sys.stderr))
_json = msgspec.json.Encoder()


class State:
    """Options given before the subcommand; those given after it win."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.config: str | None = None


def global_options(f: F) -> F:
    """``--data``, ``--db`` and ``--config`` on a command, merged with the group's."""

    @click.option("--data", "data_", metavar="DIR", default=None, help="Data directory [env AUDITKEEP_DATA; default ./auditkeep-data].")
    @click.option("--db", "db_", metavar="URL", default=None, help="Database URL (postgresql://...) [env AUDITKEEP_DB].")
    @click.option("--config", "config_", metavar="FILE", default=None, help="Settings file [env AUDITKEEP_CONFIG; default ./auditkeep.toml].")
    @functools.wraps(f)
    def wrapper(*args: Any, data_: str | None, db_: str | None, config_: str | None, **kwargs: Any) -> Any:
        state = click.get_current_context().ensure_object(State)
        if data_ is not None:
            state.options["data"] = data_
        if db_ is not None:
            state.options["db"] = db_
        if config_ is not None:
            state.config = config_
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def settings(**overrides: Any) -> Settings:
    state = click.get_current_context().ensure_object(State)
    return load_settings(state.config, overrides={**state.options, **overrides})


def ledger(create: bool = False, background: bool = False, **overrides: Any) -> Ledger:
    """Open the ledger for a command that writes (the caller closes it): it needs the signing key."""
    lg: Ledger = open_ledger(settings(**overrides), create=create, background=background)
    # the leaves this command appends name it (``cli``, ``ingest``): see docs/leaf-format.md
    names: list[str] = []
    ctx: click.Context | None = click.get_current_context()
    while ctx is not None and ctx.parent is not None:  # the root's name depends on how it was run
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    lg.submitter = Submitter("cli", " ".join(names) or None)
    return lg


def reader(**overrides: Any) -> LogReader:
    """Open the log read-only for a command that only reads (the caller closes it): no
    signing key needed, nothing written, nothing signed."""
    return open_reader(settings(**overrides))  # type: ignore[no-any-return]


def print_json(value: Any) -> None:
    sys.stdout.write(_json.encode(value).decode() + "\n")


def interactive() -> bool:
    return err.is_terminal
