"""``auditkeep archive``: WORM archive segments (run, list, verify, restore)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.table import Table

from auditkeep.archive.check import (
    SegmentError,
    check_segment,
    parse_keys,
    read_segment,
    read_segment_files,
    read_segment_key,
    segment_stem,
)
from auditkeep.archive.keys import Get, segment_data_key, segment_key_file
from auditkeep.archive.restore import restore_segment
from auditkeep.archive.run import archived_to, list_segments, run_archive
from auditkeep.archive.target import Target, open_target
from auditkeep.cli.common import err, global_options, ledger, out, print_json, settings
from auditkeep.cli.retention import _bar
from auditkeep.crypto.atrest import KeyUnavailable, resolve_kms
from auditkeep.errors import IntegrityError, UserError
from auditkeep.ledger.reader import check_tenant
from auditkeep.retention.policy import parse_duration

MAX_KEY_FILE = 1 << 20


@click.group()
def archive() -> None:
    """WORM archive segments ([archive] in auditkeep.toml; docs/archive.md)."""


def _target() -> Target:
    return open_target(settings().archive)


@archive.command(name="run")
@click.option("--tenant", "-t", help="One tenant (default: all).")
@click.option("--older-than", metavar="DURATION",
              help="Archive every entry received at least this long ago (30d, 12h), whatever archive_after says.")
@click.option("--json", "as_json", is_flag=True, help="Print what was archived as JSON.")
@global_options
def archive_run(tenant: str | None, older_than: str | None, as_json: bool) -> None:
    """Archive the entries whose policy's archive_after has passed (or, with --older-than, all
    entries that old) as segments on the configured target. Resumable: a run stopped or
    killed is finished by the next."""
    s = settings()
    policies = s.retention.policies()
    older = parse_duration(older_than, "--older-than") if older_than else None
    if older is None and not any(p.archive_after_ns is not None for p in policies):
        err.print("no retention policy has archive_after and --older-than is not given: nothing to archive")
    if tenant is not None:
        check_tenant(tenant)
    target = open_target(s.archive)
    with ledger() as lg, _bar("archiving") as bar:
        heads = lg.tenants() if tenant is None else [lg.head(tenant)]
        # what is not archived yet (the run may stop earlier, at entries not ready)
        task = bar.add_task("archive", total=sum(max(0, h.size - archived_to(lg.store, h.tenant_id)) for h in heads))
        done = run_archive(lg, target, policies, s.archive.segment_entries, time.time_ns(), tenant, older,
                           lambda n: bar.update(task, advance=n))
    if as_json:
        print_json({"target": target.description, "tenants": [
            {"tenant": d.tenant, "size": d.size, "archived_before": d.archived_before, "archived_to": d.archived_to,
             "entries": d.entries, "segments": [[a, b] for a, b in d.segments], "adopted": d.adopted, "bytes": d.bytes}
            for d in done]})
        return
    table = Table("tenant", "size", "archived now", "archived up to", "segments", "bytes")
    for d in done:
        table.add_row(d.tenant, str(d.size), str(d.entries), str(d.archived_to), str(len(d.segments)), str(d.bytes))
    out.print(table)


@archive.command(name="list")
@click.option("--tenant", "-t", help="One tenant (default: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one segment per line.")
@global_options
def archive_list(tenant: str | None, as_json: bool) -> None:
    """List the segments on the configured target (and each one's Object Lock, if any)."""
    if tenant is not None:
        check_tenant(tenant)
    target = _target()
    rows = list_segments(target, tenant)
    if as_json:
        for r in rows:
            print_json(r)
        return
    table = Table("segment", "range (end exclusive)", "checkpoint", "expired", "bytes", "lock", "complete")
    for r in rows:
        if "error" in r:
            table.add_row(str(r["name"]), "-", "-", "-", "-", "-", str(r["error"]))
            continue
        lock = target.retention(f"{r['name']}.manifest.json") or "-"
        table.add_row(str(r["name"]), f"{r['first']}-{r['end']}", str(r["tree_size"]), str(r["expired"]),
                      str(r["bytes"]), lock, "yes" if r["complete"] else "no: data missing")
    out.print(table)
    if not rows:
        err.print(f"no segments on {target.description}")


def _keys(values: tuple[str, ...]) -> list[str]:
    """Verifier keys given as text, or files of them (one a line, # comments skipped)."""
    keys: list[str] = []
    for value in values:
        path = Path(value)
        lines = [value]
        if "+" not in value and path.is_file():  # a key file, as `auditkeep pubkey` writes it
            if path.stat().st_size > MAX_KEY_FILE:
                raise click.BadParameter(f"{path} is larger than {MAX_KEY_FILE} bytes", param_hint="--key")
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        for line in lines:
            try:
                parse_keys([line])
            except ValueError as exc:
                raise click.BadParameter(f"{line[:80]!r}: {exc}", param_hint="--key") from None
            keys.append(line)
    return keys


def _local(name: str) -> bytes | None:
    try:
        return Path(name).read_bytes()
    except FileNotFoundError:
        return None


@dataclass
class _Found:
    where: str
    stem: str  # the segment's name for ``get``
    get: Get  # reads the objects beside it (its key object)


def _read_segment(segment: str) -> tuple[bytes, bytes, _Found]:
    """(manifest, data, where it is) of a local segment file, else of a segment on the target."""
    stem = segment_stem(segment)
    if Path(stem + ".manifest.json").is_file() or Path(segment).is_file():
        manifest, data = read_segment_files(Path(segment))
        return manifest, data, _Found(stem, stem, _local)
    target = _target()
    if not target.exists(stem + ".manifest.json"):
        raise UserError(f"no segment {segment!r}: neither local files nor on {target.description}")
    manifest, data = read_segment(target.get, stem)
    return manifest, data, _Found(f"{target.description}{stem}", stem, target.get)


def _data_key(manifest: bytes, seg: _Found, segment_key: Path | None = None, quiet: bool = False) -> bytes | None:
    """The data key of a sealed segment: from a segment key file when one is given, else
    unwrapped by the configured master key (from the segment's key object, or its manifest);
    None when the segment is not sealed or no key opens it (its leaves are then not opened,
    and the report says so)."""
    if segment_key is not None:
        return read_segment_key(segment_key, manifest)
    try:
        sealed = json.loads(manifest)["data"].get("sealed")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not sealed:
        return None
    s = settings()
    try:
        kms = resolve_kms(s.encryption, Path(s.data))
        return segment_data_key(seg.get, seg.stem, manifest, kms)
    except (KeyUnavailable, UserError, SegmentError) as exc:
        if not quiet:
            err.print(f"{exc}: its leaves are not opened", highlight=False, markup=False)
        return None


@archive.command(name="verify")
@click.argument("segment")
@click.option("--key", "keys", multiple=True, required=True, metavar="VKEY",
              help="The log's verifier key (as `auditkeep pubkey` prints it), or a file of such keys (repeatable).")
@click.option("--segment-key", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The segment's data key (a file written by `auditkeep archive key`): opens a sealed segment's "
                   "leaves without the master key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@global_options
def archive_verify(segment: str, keys: tuple[str, ...], segment_key: Path | None, as_json: bool) -> None:
    """Check a segment with nothing but the segment, its manifest and the key: the checkpoint's
    signature, the leaf hashes against its root, and every line against its leaf hash. SEGMENT
    is either file of a segment (or, when no such file exists, a segment's name on the
    configured target). Exit 1 names every line that was changed, removed or reordered."""
    verifiers = _keys(keys)
    manifest, data, seg = _read_segment(segment)
    where = seg.where
    rep = check_segment(manifest, data, verifiers, data_key=_data_key(manifest, seg, segment_key))
    if as_json:
        print_json({"segment": where, "ok": rep.ok, "tenant": rep.tenant, "first": rep.first, "end": rep.end,
                    "tree_size": rep.tree_size, "entries": rep.entries, "expired": rep.expired, "sealed": rep.sealed,
                    "failures": rep.failures})
    else:
        for reason in rep.failures:
            err.print(f"FAIL {reason}", highlight=False, markup=False)
    if not rep.ok:
        raise IntegrityError(f"segment {where} does not verify ({len(rep.failures)} failures)")
    if rep.sealed and not as_json:
        out.print(f"{rep.sealed} leaves are sealed and were NOT opened (no master key here): their order and the data "
                  "file's signed hash were checked; run with the store's master key configured, or give the "
                  "segment's key (--segment-key, from `auditkeep archive key`), to check the leaves",
                  highlight=False)
    if not as_json:
        out.print(f"segment {where} OK: tenant {rep.tenant}, entries {rep.first}-{rep.end} (end exclusive), "
                  f"{rep.entries} checked, {rep.expired} expired, against the checkpoint of size {rep.tree_size}",
                  highlight=False)


@archive.command(name="restore")
@click.argument("segment")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A separate data directory to restore into (created if needed; never the live one).")
@click.option("--key", "keys", multiple=True, metavar="VKEY",
              help="Check the segment with this verifier key first and refuse one that fails (repeatable).")
@global_options
def archive_restore(segment: str, out_dir: Path, keys: tuple[str, ...]) -> None:
    """Restore a segment's events into a separate data directory, where `auditkeep search`
    and `show` (with --data DIR) read them."""
    manifest, data, seg = _read_segment(segment)
    where = seg.where
    live = Path(settings().data).resolve()
    if out_dir.resolve() == live:
        raise UserError(f"{out_dir} is the live data directory; restore into a separate one")
    if keys:
        rep = check_segment(manifest, data, _keys(keys), data_key=_data_key(manifest, seg, quiet=True))
        if not rep.ok:
            for reason in rep.failures:
                err.print(f"FAIL {reason}", highlight=False, markup=False)
            raise IntegrityError(f"segment {where} does not verify; nothing restored")
    else:
        err.print("the segment is not checked first (no --key); `auditkeep archive verify` checks it")
    done = restore_segment(manifest, data, out_dir, data_key=_data_key(manifest, seg, quiet=True))
    out.print(f"restored {done.entries} entries of tenant {done.tenant} ({done.first}-{done.end}) into "
              f"{done.directory}; search them with: auditkeep search --data {done.directory} -t {done.tenant}",
              highlight=False)


@archive.command(name="key")
@click.argument("segment")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the segment key file (created with mode 0600; never overwritten).")
@global_options
def archive_key(segment: str, out_file: Path) -> None:
    """Write a sealed segment's own data key, unwrapped by the configured master key, to FILE:
    with it, `examples/verify_segment.py --segment-key FILE` (or `archive verify
    --segment-key FILE`) opens and checks that segment's leaves without the master key. The
    key opens that one segment's events: hand it over as you would the segment itself."""
    manifest, _, seg = _read_segment(segment)
    where = seg.where
    if not json.loads(manifest)["data"].get("sealed"):
        raise UserError(f"segment {where} is not sealed: its leaves are in the clear, no key is needed")
    s = settings()
    key = segment_data_key(seg.get, seg.stem, manifest, resolve_kms(s.encryption, Path(s.data)))
    assert key is not None
    try:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{out_file} exists; a segment key file is never overwritten") from None
    with os.fdopen(fd, "wb") as f:
        f.write(segment_key_file(manifest, key))
    err.print(f"wrote the data key of segment {where} to {out_file} (mode 0600)", highlight=False)
