"""``auditkeep evidence`` and ``auditkeep verify-bundle``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from auditkeep.cli.common import err, global_options, interactive, out, reader
from auditkeep.cli.search import _catch_up_index
from auditkeep.evidence.build import build_bundle
from auditkeep.evidence.bundlecheck import BundleError, verify_bundle
from auditkeep.model.event import CATEGORIES, OUTCOMES
from auditkeep.query.filters import Filters, parse_time


def _bar(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, disable=not interactive(),
    )  # fmt: skip


@click.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--since", required=True, help="Window start, on received_at, inclusive (RFC 3339, 'now', or ago: 15m, 2h, 7d).")
@click.option("--until", default="now", show_default=True, help="Window end, on received_at, exclusive (same forms).")
@click.option("--actor", help="Only this actor id's events in full.")
@click.option("--action", help="Only this action (or prefix ending in *) in full.")
@click.option("--resource-type")
@click.option("--resource-id")
@click.option("--outcome", type=click.Choice(OUTCOMES))
@click.option("--category", type=click.Choice(CATEGORIES))
@click.option("--text", "-q", help="Full-text query the events in full must match.")
@click.option("--meta", "metadata", multiple=True, metavar="PATH=VALUE", help="Equality on a metadata path (repeatable).")
@click.option("--reveal-subject", metavar="SUBJECT", help="Include this subject's personal fields, checkable against the commitments.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The bundle (.zip) to write.")
@global_options
def evidence(
    tenant: str, since: str, until: str, reveal_subject: str | None, out_path: Path, metadata: tuple[str, ...], **filters: Any
) -> None:
    """Write an evidence bundle: the events a tenant's log received in a window, with the
    proof that the window is complete and unaltered (docs/evidence.md).

    The window bounds received_at, which never decreases within a log; the bundle also
    holds the entries just outside it, the signed checkpoint, the proofs and the verifier
    keys. With filters, matching events are in full and the others as leaf hashes only.
    Personal fields are left out (commitments only) unless --reveal-subject opens one
    subject's. Reads only: no signing key needed."""
    since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
    chosen = Filters.parse({**filters, "metadata": list(metadata)})
    out_path = out_path.expanduser()
    if not out_path.parent.is_dir():
        raise click.UsageError(f"{out_path.parent} is not a directory", None)
    # Written beside the target and renamed: a failed run leaves no half bundle behind.
    fd, tmp = tempfile.mkstemp(prefix=".evidence-", suffix=".zip", dir=out_path.parent)
    try:
        with reader() as lg, os.fdopen(fd, "wb") as f, _bar("bundling") as bar:
            if chosen:
                _catch_up_index(lg, tenant)
            task = bar.add_task("bundle", total=None)
            summary = build_bundle(
                lg, f, tenant, since_ns, until_ns, filters=chosen, reveal_subject=reveal_subject,
                progress=lambda n: bar.update(task, advance=n), total=lambda n: bar.update(task, total=n),
            )  # fmt: skip
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    out.print(f"wrote {out_path}", highlight=False)
    out.print(
        f"window {summary.since} .. {summary.until}: {summary.events} event(s) in full, {summary.hashed} as hashes; "
        f"indices {summary.first}..{summary.end - 1}; checkpoint {summary.checkpoint_size}, newest {summary.latest_size}",
        highlight=False,
    )
    if reveal_subject is not None:
        out.print(f"revealed personal fields of {summary.revealed} event(s) of {reveal_subject}", highlight=False)
    if summary.open_end:
        err.print(
            f"note: the window reaches past the newest signed checkpoint ({summary.checkpoint_size} entries): the bundle "
            "is complete up to it (a writer signs within checkpoint_interval; `auditkeep checkpoint --new` signs now)",
            highlight=False,
        )


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "keys", multiple=True, required=True, metavar="VKEY", help="Verifier key of the log, obtained from its operator (repeatable).")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY", help="Witness key whose cosignature the checkpoint must carry (repeatable).")
def verify_bundle_command(bundle: Path, keys: tuple[str, ...], witnesses: tuple[str, ...]) -> None:
    """Check an evidence bundle with nothing but the bundle and the keys given: signatures,
    the range against the checkpoint, completeness at both ends, every event's hash, revealed
    personal fields. Exit 0 when valid, 1 when a check fails (each reason printed)."""
    try:
        with _bar("verifying") as bar:
            task = bar.add_task("verify", total=None)
            result = verify_bundle(str(bundle), keys, witnesses, progress=lambda n: bar.update(task, advance=n))
    except BundleError as exc:
        out.print(f"[red]FAIL[/red]: {exc}", highlight=False)
        sys.exit(1)
    except ValueError as exc:  # a key given that cannot be parsed
        raise click.UsageError(str(exc)) from None
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    if not result.ok:
        for reason in result.failures:
            out.print(f"[red]FAIL[/red]: {reason}", highlight=False)
        sys.exit(1)
    s = result.summary
    out.print(
        f"[green]OK[/green]: tenant {s['tenant']}, window {s['since']} .. {s['until']}: {s['events']} event(s) in full, "
        f"{s['hashed']} as hashes, indices {s['first']}..{s['end'] - 1}; checkpoint at {s['checkpoint_size']} "
        f"consistent with {s['latest_size']}"
        + (f"; cosigned by {', '.join(s['witnesses'])}" if s.get("witnesses") else "")
        + (f"; {s['revealed']} event(s) with revealed personal fields checked" if s.get("revealed") else ""),
        highlight=False,
    )
