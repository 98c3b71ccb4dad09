"""``auditkeep verify``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from auditkeep.cli.common import err, global_options, interactive, ledger, out, print_json, reader
from auditkeep.ledger.reader import LogReader
from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify import Problem, VerifyReport
from auditkeep.ledger.witnessed import WitnessPolicy, check_witnessed, witness_keys
from auditkeep.log.note import NoteError, NoteVerifier, parse_note


@click.command()
@click.option("--tenant", "-t", help="Verify one tenant (default: all).")
@click.option("--key", "keys", multiple=True, metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A verifier key file, as `auditkeep pubkey` prints it, kept outside the store (repeatable, "
                   "e.g. the keys before and after a rotation). Checkpoints must be signed by one of these; "
                   "the key recorded in the store is not used.")
@click.option("--trusted", "trusted", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file holding a checkpoint note saved earlier (repeatable): the log must still contain it.")
@click.option("--require-signed", is_flag=True,
              help="Fail when entries follow the newest signed checkpoint (by default a warning).")
@click.option("--witness", "witness_keys", multiple=True, metavar="VKEY",
              help="A witness's verifier key (repeatable): the newest checkpoints must carry --quorum valid "
                   "cosignatures by these witnesses, over roots the events still produce.")
@click.option("--quorum", type=click.IntRange(1, 100), default=None,
              help="Cosignatures a checkpoint needs from the --witness keys [default 1].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@global_options
def verify(
    tenant: str | None,
    keys: tuple[Path, ...],
    trusted: tuple[Path, ...],
    require_signed: bool,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    as_json: bool,
) -> None:
    """Recompute every leaf, tile and root, check every checkpoint and personal field.

    Entries whose payload a retention policy deleted are reported as expired (their leaf
    hashes are taken from the tiles, and a retention record in the log must name them).

    Reads only: the store is opened read-only, no signing key is needed and nothing is
    signed. Without --key, checkpoints are checked against the verifier key recorded in the
    store, and the report says so. Exits 0 when everything is intact, 1 when tampering is
    found (naming the first index where the log diverges).
    """
    notes = [p.read_text() for p in trusted]
    given = [_read_key(p) for p in keys]
    policy = _witness_policy(witness_keys, quorum, require_signed)
    witnessed: dict[str, int] = {}
    # the archive's code, imported here rather than at every command's start
    from auditkeep.archive.restored import is_restored, verify_restored

    with reader() as lg:
        trust = (
            Trust.given([v for vs in given for v in vs], notes, require_signed=require_signed)
            if given
            else lg.stored_trust(notes, require_signed=require_signed)
        )
        heads = lg.tenants() if tenant is None else [lg.head(tenant)]
        total = sum(h.size for h in heads)
        with Progress(
            TextColumn("[bold]verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, disable=not interactive(),
        ) as bar:
            task = bar.add_task("verify", total=total)
            if is_restored(lg.store):  # archive restore: ranges checked against their segments' checkpoints
                report = verify_restored(lg, trust, tenant, lambda n: bar.update(task, advance=n))
            else:
                report = lg.verify(tenant, trust=trust, progress=lambda n: bar.update(task, advance=n))
        if policy is not None:
            for t in report.tenants:
                witnessed[t.tenant] = check_witnessed(lg.store, lg.head(t.tenant), lg.origin(t.tenant), policy, t)
        hints = _rotation_hints(lg, report) if given and not as_json else []
    if as_json:
        doc = _as_json(report, trust)
        if policy is not None:
            doc["witnesses"] = {"keys": [w.vkey() for w in policy.witnesses], "quorum": policy.quorum}
            for t in doc["tenants"]:
                t["witnessed_size"] = witnessed.get(t["tenant"], 0)
        print_json(doc)
    else:
        _print_text(report, trust)
        for hint in hints:
            err.print(f"[yellow]hint:[/yellow] {escape(hint)}", highlight=False)
        if policy is not None:
            names = ", ".join(w.name for w in policy.witnesses)
            for name, size in witnessed.items():
                out.print(f"{name}: witnessed up to size {size} ({policy.quorum} of {names})", highlight=False)
    if not report.ok:
        sys.exit(1)


_UNTRUSTED = re.compile(r"^checkpoint at size (\d+) is not signed by a trusted key")


def _rotation_hints(lg: LogReader, report: VerifyReport) -> list[str]:
    """For each checkpoint no --key signed: which of the keys the store lists signed it (a key
    rotated in or out that the checker may hold elsewhere). Only a hint: the store's list
    is not trusted, which is why the check itself ignores it."""
    stored = lg.stored_keys()
    out: list[str] = []
    for t in report.tenants:
        origin = lg.origin(t.tenant)
        ids: dict[bytes, int] = {}
        for n, k in enumerate(stored):
            v = k.verifier()
            ids[v.key_id] = ids[NoteVerifier(origin, v.public_key).key_id] = n + 1
        for p in t.problems:
            m = _UNTRUSTED.match(p.message) if p.kind == "checkpoint" else None
            row = lg.store.checkpoint_at(lg.tenant_id(t.tenant), int(m.group(1))) if m else None
            if row is None:
                continue
            try:
                signers = sorted({ids[s.key_id] for s in parse_note(row.note)[1] if s.key_id in ids})
            except NoteError:
                continue
            if signers:
                which = " and ".join(f"key {n} of {len(stored)}" for n in signers)
                them = "that key" if len(signers) == 1 else "one of them"
                out.append(
                    f"{t.tenant}: the checkpoint at size {m.group(1)} is signed by {which} the store lists "  # type: ignore[union-attr]
                    f"(`auditkeep pubkey --all`); if you hold {them} from elsewhere, add it with --key"
                )
    return out


def _witness_policy(texts: tuple[str, ...], quorum: int | None, require_signed: bool) -> WitnessPolicy | None:
    if not texts:
        if quorum is not None:
            raise click.UsageError("--quorum needs --witness")
        return None
    try:
        return WitnessPolicy(witness_keys(texts), quorum or 1, require_signed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--witness") from None


def _read_key(path: Path) -> list[NoteVerifier]:
    """The verifier keys in a file: one per line (blank lines and # comments skipped)."""
    out: list[NoteVerifier] = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--key") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(NoteVerifier.from_vkey(line))
        except ValueError as exc:
            raise click.BadParameter(f"{path}: not a verifier key: {exc}", param_hint="--key") from None
    if not out:
        raise click.BadParameter(f"{path}: no verifier key in it", param_hint="--key")
    return out


def _problem(p: Problem) -> dict[str, Any]:
    return {"index": p.index, "kind": p.kind, "message": p.message}


def _as_json(report: VerifyReport, trust: Trust) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "trust": {
            "keys": [k.vkey() for k in trust.keys],
            "keys_from": "store" if trust.keys_from_store else "given",
            "trusted_checkpoints": len(trust.trusted),
            "require_signed": trust.require_signed,
        },
        "tenants": [
            {"tenant": t.tenant, "size": t.size, "entries_checked": t.entries_checked,
             "checkpoints_checked": t.checkpoints_checked, "signed_size": t.signed_size,
             "personal_fields_checked": t.sealed_checked, "personal_fields_erased": t.erased,
             "expired": t.expired, "expired_ranges": [[a, b] for a, b in t.expired_ranges],
             "payloads_unchecked": t.payloads_unchecked,
             **({"restored_ranges": [[a, b] for a, b in t.restored], "partial": True} if t.restored else {}),
             "problems": [_problem(p) for p in t.problems], "warnings": [_problem(p) for p in t.warnings]}
            for t in report.tenants
        ],
    }


def _print_text(report: VerifyReport, trust: Trust) -> None:
    table = Table("tenant", "entries", "expired", "checkpoints", "signed up to", "personal fields", "result")
    for t in report.tenants:
        first = t.first
        intact = "[green]intact[/green]" + (" [yellow](tree only)[/yellow]" if t.payloads_unchecked else "") + (
            " [yellow](partial)[/yellow]" if t.restored else "")
        result = intact if t.ok else f"[red]{escape(first.render(t.tenant)) if first else 'failed'}[/red]"
        fields = f"{t.sealed_checked} checked" + (f", {t.erased} erased" if t.erased else "")
        expired = _ranges(t.expired_ranges) if t.expired else "-"
        table.add_row(
            t.tenant, f"{t.entries_checked}/{t.size}", expired, str(t.checkpoints_checked), str(t.signed_size), fields, result
        )
    out.print(table)
    if trust.keys_from_store:
        out.print(
            "[yellow]trusted the verifier key found in the store[/yellow] "
            f"({', '.join(k.vkey() for k in trust.keys)}): whoever can write the store can replace it. "
            "Check against a key kept elsewhere with --key FILE.",
            highlight=False,
        )
    else:
        out.print(f"checked against the given key(s) only: {', '.join(k.vkey() for k in trust.keys)}", highlight=False)
    for t in report.tenants:
        if t.restored:
            out.print(
                f"{t.tenant}: [yellow]partial[/yellow]: restored from the archive, entries "
                f"{', '.join(f'{a}..{b - 1}' for a, b in t.restored)} checked against their segments' signed "
                f"checkpoint (size {t.signed_size}); the rest of the tree is not in this directory.",
                highlight=False,
            )
        if t.payloads_unchecked:
            out.print(
                f"[yellow]{t.tenant}: {t.payloads_unchecked} payloads are encrypted and were NOT checked[/yellow] "
                "(no master key here): the tree, tiles, head and checkpoints were verified with the leaf hashes "
                "of the tiles; run verify with the master key to check the events themselves.",
                highlight=False,
            )
        for p in t.warnings:
            err.print(f"[yellow]warning:[/yellow] {escape(p.render(t.tenant))}", highlight=False)
        for p in t.problems:
            label = p.kind if p.kind in ("unsigned", "unwitnessed") else "tampering"
            err.print(f"[red]{label}:[/red] {escape(p.render(t.tenant))}", highlight=False)


def _ranges(ranges: list[tuple[int, int]], most: int = 3) -> str:
    """``12 (0..9, 15..16)``: how many expired, and where (end inclusive)."""
    total = sum(b - a for a, b in ranges)
    shown = ", ".join(f"{a}..{b - 1}" if b - a > 1 else str(a) for a, b in ranges[:most])
    more = f", +{len(ranges) - most} ranges" if len(ranges) > most else ""
    return f"{total} ({shown}{more})"


@click.command()
@click.option("--tenant", "-t", help="Rebuild one tenant's part only after the reset (default: all).")
@global_options
def reindex(tenant: str | None) -> None:
    """Drop the search indexes and rebuild them from the log.

    The indexes and the full-text index are a projection of the committed log: nothing in
    them is trusted by verify, and this command recreates them exactly (for instance after
    deleting index.db with its -wal and -shm files, or after a fix in how events are indexed).
    """
    with ledger() as lg:
        lg.store.reset_projection()
        heads = lg.tenants() if tenant is None else [lg.head(tenant)]
        with Progress(
            TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, disable=not interactive(),
        ) as bar:
            task = bar.add_task("index", total=sum(h.size for h in heads))
            for h in heads:
                lg.sync_projection(h.tenant, progress=lambda n: bar.update(task, advance=n))
    out.print(f"reindexed {sum(h.size for h in heads)} events in {len(heads)} tenant log(s)", highlight=False)
