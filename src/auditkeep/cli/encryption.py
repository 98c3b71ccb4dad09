"""``auditkeep encryption``: the master key and data keys of an encrypted store."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from auditkeep.archive.keys import archive_target, rotate_with_segments
from auditkeep.cli.common import err, global_options, interactive, ledger, out, settings
from auditkeep.cli.retention import cli_actor
from auditkeep.crypto.atrest import EncryptionSettings, resolve_kms
from auditkeep.errors import UserError
from auditkeep.ledger.atrest import EncryptedStore
from auditkeep.ledger.key_events import reencrypt_all


@click.group()
def encryption() -> None:
    """Encryption at rest (docs/encryption.md): rotate the master key, re-encrypt payloads."""


@encryption.command("rotate")
@click.option("--new-key-file", metavar="FILE", help="The new master key, in a file of mode 0600.")
@click.option("--new-key-env", metavar="NAME", help="The new master key, in this environment variable.")
@click.option("--reencrypt", is_flag=True,
              help="Also rewrite every payload under a new data key per tenant (resumable: run it again after a "
                   "stop); the old data keys are deleted at the end. Running writers switch to the new keys at their "
                   "next append.")
@global_options
def rotate_cmd(new_key_file: str | None, new_key_env: str | None, reencrypt: bool) -> None:
    """Re-wrap the store's data keys under a new master key (no event is rewritten), and
    with --reencrypt rewrite the payloads under new data keys.

    The current master key is the one the settings name ([encryption]); afterwards point
    them at the new one."""
    if new_key_file and new_key_env:
        raise UserError("give --new-key-file or --new-key-env, not both")
    if not (new_key_file or new_key_env or reencrypt):
        raise UserError("nothing to do: give a new master key (--new-key-file, --new-key-env), --reencrypt, or both")
    s = settings()
    new = None
    if new_key_file or new_key_env:
        new = resolve_kms(EncryptionSettings(key_file=new_key_file, key_env=new_key_env), Path(s.data))
    with ledger() as lg:  # a writer: each rotation is recorded in the log (docs/encryption.md)
        store = lg.store
        if not isinstance(store, EncryptedStore):
            raise UserError("this store is not encrypted (encryption is chosen at `auditkeep init --encrypt`)")
        if new is not None:
            done = rotate_with_segments(lg, new, cli_actor(), archive_target(s.archive))
            if done.keys:
                out.print(f"re-wrapped {done.keys} data keys under master key {new.key_id}; point [encryption] at it now")
            else:
                out.print(f"the store's data keys are under master key {new.key_id} already; finishing the archive's")
            if done.dropped is not None:
                added = done.added.changed if done.added is not None else 0
                out.print(f"archive: {done.dropped.segments} sealed segments, {added} given a wrap under the new master "
                          f"key, {done.dropped.changed} left with it alone")
                for stem in done.dropped.left or []:
                    err.print(f"archive: segment {stem} is wrapped under neither master key: left as it is",
                              highlight=False, markup=False)
        if reencrypt:
            heads = store.heads()
            with Progress(TextColumn("[bold]re-encrypting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err, disable=not interactive()) as bar:
                task = bar.add_task("reencrypt", total=sum(h.size for h in heads))
                for r in reencrypt_all(lg, cli_actor(), lambda n: bar.update(task, advance=n)):
                    out.print(f"{r.tenant}: {r.rewritten} payloads rewritten under data key generation {r.generation}; "
                              f"deleted generations {', '.join(map(str, r.dropped)) or 'none'}")
