"""``auditkeep db``: schema migrations, status, and moving an embedded store to PostgreSQL."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from auditkeep.cli.common import err, global_options, interactive, out, settings
from auditkeep.config import Settings
from auditkeep.store.factory import open_store

if TYPE_CHECKING:
    from auditkeep.store.sqlite import SQLiteStore


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _url(s: Settings) -> str:
    """The store these settings name: ``db`` if set, else the data directory (SQLite)."""
    return s.db or f"sqlite://{Path(s.data).resolve()}"


def _sqlite_dir(url: str) -> Path:
    if not url.startswith("sqlite://"):
        raise click.UsageError(
            f"expected sqlite:///path or postgresql://..., got {url.split(':', 1)[0]}:"
        )
    return Path(url[len("sqlite://") :])


def _open_sqlite(directory: Path, s: Settings, *, create: bool = True) -> SQLiteStore:
    """The embedded store (this command uses its schema methods beyond ``Store``)."""
    return cast("SQLiteStore", open_store(directory, durability=s.durability, create=create))


def _open_postgres(url: str, s: Settings, migrate: bool) -> Any:
    """The PostgreSQL store (typed Any: this command uses its schema methods beyond ``Store``)."""
    return open_store(url, durability=s.durability, migrate=migrate, pool_size=2)


@click.group()
def db() -> None:
    """The database: schema version, migrations, copying an embedded store to PostgreSQL."""


@db.command()
@global_options
def migrate() -> None:
    """Create or upgrade the schema (also done by every start); print its version."""
    s = settings()
    url = _url(s)
    if _is_postgres(url):
        store = _open_postgres(url, s, migrate=False)
        try:
            before = store.schema_version()
            after = store.migrate()
        finally:
            store.close()
        where = store.url + (f" (schema {store.schema})" if store.schema else "")
    else:
        directory = _sqlite_dir(url)
        existed = (directory / "log.db").exists()
        lite = _open_sqlite(directory, s)
        try:
            after = lite.schema_version()
        finally:
            lite.close()
        before = after if existed else 0
        where = str(directory)
    if before == after:
        out.print(f"{where}: schema version {after}, up to date")
    else:
        out.print(f"{where}: schema version {before} -> {after}")


@db.command()
@global_options
def status() -> None:
    """Schema version, tenants with their sizes and projection lag, and partitions."""
    from auditkeep.store.postgres_schema import SCHEMA_VERSION

    s = settings()
    url = _url(s)
    if not _is_postgres(url):
        directory = _sqlite_dir(url)
        lite = _open_sqlite(directory, s, create=False)
        try:
            out.print(f"store           SQLite in {directory}")
            out.print(f"schema version  {lite.schema_version()}")
            _tenants(lite)
        finally:
            lite.close()
        return
    store = _open_postgres(url, s, migrate=False)
    try:
        version = store.schema_version()
        out.print(
            f"store           PostgreSQL {store.url}"
            + (f" schema {store.schema}" if store.schema else "")
        )
        if version == SCHEMA_VERSION:
            state = "up to date"
        elif version < SCHEMA_VERSION:
            state = f"{SCHEMA_VERSION - version} migration(s) pending: run `auditkeep db migrate`"
        else:
            state = f"newer than this auditkeep ({SCHEMA_VERSION}): upgrade auditkeep"
        out.print(f"schema version  {version} ({state})", highlight=False)
        if version == 0:
            return
        for number, description, applied in store.migrations():
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(applied // 1_000_000_000))
            out.print(f"  {number}  {stamp}Z  {description}", highlight=False)
        _tenants(store)
        parts = Table("partition", "rows (estimate)", "size")
        for name, rows, size in store.partitions():
            parts.add_row(name, str(rows) if rows else "-", _bytes(size))
        out.print(parts)
    finally:
        store.close()


def _tenants(store: Any) -> None:
    table = Table("tenant", "size", "checkpointed", "projected", "root")
    for h in store.heads():
        projected = store.projection_position(h.tenant_id)
        table.add_row(
            h.tenant, str(h.size), str(h.checkpoint_size), str(projected), h.root.hex()[:16] + "…"
        )
    out.print(table)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@db.command()
@click.option(
    "--from",
    "source",
    metavar="URL",
    default=None,
    help="The embedded store, sqlite:///DIR [default: the data directory].",
)
@click.option(
    "--to",
    "target",
    metavar="URL",
    default=None,
    help="The PostgreSQL database, postgresql://... [default: --db / setting db].",
)
@click.option(
    "--verify/--no-verify",
    "full_verify",
    default=True,
    show_default=True,
    help="Also recompute every tenant's tree and checkpoints on the destination.",
)
@global_options
def copy(source: str | None, target: str | None, full_verify: bool) -> None:
    """Copy a whole embedded store into PostgreSQL, then check that every tenant's tree head
    is identical (and, with --verify, recompute every tree on the destination).

    Entries, tiles, checkpoints, salts, cursors, documents and settings are copied as they
    are; the search projection is rebuilt by the server. Stop writers to the source first.
    An interrupted copy can be run again: tenants already copied are skipped.
    """
    from auditkeep.store.postgres_copy import copy_to_postgres, entry_count
    s = settings()
    src_url = source or f"sqlite://{Path(s.data).resolve()}"
    dst_url = target or s.db
    if not dst_url or not _is_postgres(dst_url):
        raise click.UsageError("--to postgresql://... is required (or set db)")
    directory = _sqlite_dir(src_url)
    src = _open_sqlite(directory, s, create=False)
    dst = _open_postgres(dst_url, s, migrate=True)
    try:
        heads = src.heads()
        total = sum(h.size for h in heads)
        with _progress("copying") as bar:
            task = bar.add_task("copy", total=total)
            report = copy_to_postgres(src, dst, progress=lambda n: bar.update(task, advance=n))
        table = Table("tenant", "size", "root", "copy", "head")
        after = {h.tenant: h for h in dst.heads()}
        for h in heads:
            got = after.get(h.tenant)
            same = (
                got is not None
                and (got.size, got.root) == (h.size, h.root)
                and entry_count(dst, h.tenant_id) == h.size
            )
            if not same and h.tenant not in report.mismatches:
                report.mismatches.append(h.tenant)
            table.add_row(
                h.tenant,
                str(h.size),
                h.root.hex()[:16] + "…",
                "skipped (already there)" if h.tenant in report.skipped else "copied",
                "[green]identical[/green]" if same else "[red]DIFFERS[/red]",
            )
        out.print(table)
        failed = bool(report.mismatches)
        if full_verify and not failed:
            failed = not _verify_all(dst, total)
    finally:
        src.close()
        dst.close()
    if failed:
        err.print("[red]error:[/red] the copy differs from the source", highlight=False)
        sys.exit(1)
    out.print(
        f"copied {report.entries} entries of {len(report.copied)} tenant(s); "
        f"{len(report.skipped)} already there"
    )


def _progress(what: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not interactive(),
    )


def _verify_all(store: Any, total: int) -> bool:
    """Recompute every tenant's tree on ``store`` with the keys recorded in it."""
    from auditkeep.ledger.append import origin_for
    from auditkeep.ledger.keyring import load_keys
    from auditkeep.ledger.trust import Trust
    from auditkeep.ledger.verify import verify_log

    keys, log_id = load_keys(store), store.meta("log_id")
    if not keys or not log_id:
        err.print(
            "[yellow]warning:[/yellow] no verifier key in the store: trees not recomputed",
            highlight=False,
        )
        return True
    trust = Trust.from_store([k.verifier() for k in keys])
    ok = True
    with _progress("verifying") as bar:
        task = bar.add_task("verify", total=total)
        for h in store.heads():
            rep = verify_log(
                store,
                h,
                origin_for(log_id, h.tenant),
                trust,
                progress=lambda n: bar.update(task, advance=n),
            )
            if not rep.ok:
                ok = False
                for p in rep.problems:
                    err.print(f"[red]verify:[/red] {p.render(h.tenant)}", highlight=False)
    if ok:
        out.print("verified: every tree, tile and checkpoint recomputed on the destination")
    return ok
