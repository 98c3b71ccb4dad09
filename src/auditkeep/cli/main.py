"""The ``auditkeep`` command."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click
from rich.markup import escape

from auditkeep import __version__
from auditkeep.cli.common import State, err, global_options, out, reader, settings
from auditkeep.config import open_ledger
from auditkeep.errors import IntegrityError, StoreError, UserError

EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


class _Group(click.Group):
    """The command group, loading a command's module when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY:
            command = _lazy_command(cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` as click writes it, a command not loaded yet listed
        by its summary in :data:`_LAZY` (loading them all cost ~0.5 s of every ``--help``)."""
        names = self.list_commands(ctx)
        commands = [(n, self.commands.get(n) or _Listed(n, help=_LAZY[n][2])) for n in names]
        commands = [(n, c) for n, c in commands if not c.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(n) for n, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in commands])


class _Listed(click.Command):
    """A command not loaded yet, as ``--help`` lists it."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditkeep")
@global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """auditkeep: a tamper-evident audit log.

    Events are kept append-only in per-tenant Merkle logs with signed checkpoints;
    every event can be proven included and every log verified end to end.
    """
    ctx.ensure_object(State)


@cli.command()
@click.option("--log-id", metavar="ID", help="Name of this log in checkpoint origins (default: random).")
@click.option("--encrypt", is_flag=True,
              help="Encrypt the store at rest (AES-256-GCM; the master key as [encryption] says, by default a new "
                   "<data>/master.key, mode 0600). See docs/encryption.md.")
@global_options
def init(log_id: str | None, encrypt: bool) -> None:
    """Create the data directory, its signing key and an empty store."""
    from auditkeep.console.secretbox import key_path, load_box  # the console package is heavy
    from auditkeep.crypto.atrest import ALGORITHM
    from auditkeep.ledger.datadir import check_log_id

    if log_id is not None:
        check_log_id(log_id)

    s = settings(log_id=log_id)
    if encrypt:
        s.encryption.enabled = True
    with open_ledger(s, create=True, background=False) as lg:
        out.print(f"data directory  {s.data}")
        out.print(f"log id          {lg.identity.log_id}")
        out.print(f"verifier key    {lg.identity.signer.verifier_key()}")
        # Made now (not at the first serve) so that every node of a shared store can be given
        # this one file before any of them starts: a node with a key of its own is refused.
        out.print(f"console key     {key_path(s)}")
        load_box(s, lg.store)
        kms = getattr(lg.store, "keys", None)
        if kms is not None:
            out.print(f"encryption      {ALGORITHM}, master key {kms.kms.key_id}")


@cli.command()
@click.option("--tenant", "-t", default=None, help="The key as that tenant's checkpoints name it (their origin).")
@click.option("--all", "all_keys", is_flag=True,
              help="Every key the log has had, oldest first, each after a # line with when it was added and the size "
                   "each tenant's log had when it started signing (a key file `verify --key` reads).")
@global_options
def pubkey(tenant: str | None, all_keys: bool) -> None:
    """Print the verifier key (note format: name+keyid+base64) that checks checkpoints.

    Without --tenant: the log-wide key (named auditkeep.local/<log id>), which auditkeep
    verify and the SDK accept for every tenant. With --tenant: the same public key under
    that tenant's checkpoint origin, the name its checkpoints are signed under, for other
    tools of the transparency ecosystem (and witnesses). The key printed is the current one
    (the newest after `auditkeep signing-key rotate`); --all prints the history."""
    with reader() as lg:
        if not all_keys:
            click.echo(lg.pubkey(tenant))
            return
        for line in lg.key_history(tenant):
            click.echo(line)


@cli.command()
@global_options
def tenants() -> None:
    """List the tenant logs with their sizes and latest checkpoint."""
    from rich.table import Table

    with reader() as lg:
        table = Table("tenant", "size", "checkpointed", "root")
        for h in lg.tenants():
            table.add_row(h.tenant, str(h.size), str(h.checkpoint_size), h.root.hex()[:16] + "…")
        out.print(table)


# The other commands, each imported only when it is named: each pulls in its own stack (the
# server, the console, the gateways, the archive), and a command line that imported them all
# spent over a second before doing anything. Each comes with the first paragraph of its help,
# which `auditkeep --help` lists (tests/core/test_cli_lazy.py checks them against the commands).
_LAZY: dict[str, tuple[str, str, str]] = {
    "ingest": ("auditkeep.cli.ingest", "ingest",
        "Append the events in FILE (or - for standard input) to a tenant's log."),
    "search": ("auditkeep.cli.search", "search",
        "Search a tenant's events (newest first by event time)."),
    "checkpoint": ("auditkeep.cli.proof", "checkpoint",
        "Print the latest signed checkpoint (C2SP tlog-checkpoint, signed note)."),
    "proof": ("auditkeep.cli.proof", "proof",
        "Inclusion and consistency proofs (RFC 9162)."),
    "show": ("auditkeep.cli.proof", "show",
        "Show one event (by id or --index) as JSON."),
    "verify": ("auditkeep.cli.verify", "verify",
        "Recompute every leaf, tile and root, check every checkpoint and personal field."),
    "reindex": ("auditkeep.cli.verify", "reindex",
        "Drop the search indexes and rebuild them from the log."),
    "serve": ("auditkeep.cli.serve", "serve",
        "Serve the HTTP API (creates the data directory and an admin key on first start)."),
    "keys": ("auditkeep.cli.keys", "keys",
        "API keys (stored as hashes; a key's secret is shown once)."),
    "signing-key": ("auditkeep.cli.signing", "signing_key",
        "The log's checkpoint signing key."),
    "users": ("auditkeep.cli.users", "users",
        "Console accounts (passwords kept as argon2id hashes)."),
    "db": ("auditkeep.cli.db", "db",
        "The database: schema version, migrations, copying an embedded store to PostgreSQL."),
    "alerts": ("auditkeep.cli.alerts", "alerts",
        "Alerts: run the rules, list alerts, acknowledge and resolve them."),
    "rules": ("auditkeep.cli.alerts", "rules",
        "Rules: list, check, try over a file of events, backtest over stored history."),
    "collect": ("auditkeep.cli.sources", "collect",
        "Follow a source on this host and deliver it to an auditkeep server."),
    "quarantine": ("auditkeep.cli.sources", "quarantine",
        "Records that sources could not read: list, show, retry after a fix, drop."),
    "gateway": ("auditkeep.cli.gateway", "gateway",
        "Access gateways (PostgreSQL, MCP) and the approvals their guardrails ask for."),
    "witness": ("auditkeep.cli.witness", "witness",
        "A witness: cosigns checkpoints of the logs it trusts, never a rollback or a fork."),
    "export": ("auditkeep.cli.export", "export",
        "Export a tenant's events, page by page in constant memory."),
    "forward": ("auditkeep.cli.forward", "forward",
        "The forward targets of auditkeep.toml ([[forward]]; `auditkeep serve` runs them)."),
    "evidence": ("auditkeep.cli.evidence", "evidence",
        "Write an evidence bundle: the events a tenant's log received in a window, with the "
        "proof that the window is complete and unaltered (docs/evidence.md)."),
    "verify-bundle": ("auditkeep.cli.evidence", "verify_bundle_command",
        "Check an evidence bundle with nothing but the bundle and the keys given: signatures, "
        "the range against the checkpoint, completeness at both ends, every event's hash, "
        "revealed personal fields. Exit 0 when valid, 1 when a check fails (each reason "
        "printed)."),
    "retention": ("auditkeep.cli.retention", "retention",
        "Retention policies ([[retention.policy]] in auditkeep.toml): plan and run them."),
    "hold": ("auditkeep.cli.retention", "hold",
        "Legal holds: held events are never deleted or erased until the hold is released."),
    "erase": ("auditkeep.cli.retention", "erase",
        "Erase a data subject's personal fields (crypto-shredding): the salt and the plaintext "
        "are destroyed in every store file, the leaves and every proof stay valid; recorded as "
        "auditkeep.subject.erased (without naming the subject). Active holds block it (exit 2)."),
    "archive": ("auditkeep.cli.archive", "archive",
        "WORM archive segments ([archive] in auditkeep.toml; docs/archive.md)."),
    "encryption": ("auditkeep.cli.encryption", "encryption",
        "Encryption at rest (docs/encryption.md): rotate the master key, re-encrypt payloads."),
}


def _lazy_command(name: str) -> click.Command | None:
    """The command ``name`` of another face, importing its module now; None if absent."""
    import importlib

    module, attr, _ = _LAZY[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    command = getattr(mod, attr, None)
    if command is not None:
        cli.add_command(command, name)
    return command


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, ``error:`` first, and the exit status."""
    line = " ".join(message.split())  # one line, whatever the message held
    err.print(f"[red]error:[/red] {escape(line)}", highlight=False)
    sys.exit(code)


def _usage(exc: click.UsageError) -> str:
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    return exc.format_message() + hint


def main() -> None:
    """Entry point: user errors become one line on stderr (exit 2), never a traceback.

    The branch of :mod:`auditkeep.errors` decides the status: a ``UserError`` (or a
    ``StoreError``: the database is unreachable) exits 2; an ``IntegrityError`` exits 1, as
    do the integrity failures that verify and db copy report themselves; 130 is an
    interrupt; anything else is a bug, 70."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        _fail(_usage(exc))
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.Abort:
        err.print("aborted")
        sys.exit(130)
    except (UserError, StoreError) as exc:  # bad input, a missing thing, an unreachable database
        _fail(str(exc))
    except IntegrityError as exc:  # a proof or the store's record of its keys does not hold
        _fail(str(exc), EXIT_INTEGRITY)
    except OSError as exc:
        _fail(_os_error(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line; the traceback on request
        if os.environ.get("AUDITKEEP_DEBUG"):
            raise
        _fail(f"internal error ({type(exc).__name__}: {exc}); set AUDITKEEP_DEBUG=1 for the traceback", EXIT_INTERNAL)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":
    main()
