"""``auditkeep signing-key rotate``: a new signing key for the log (a writer: it needs the
current key). See :mod:`auditkeep.ledger.rotation` for the steps and what a kill leaves."""

from __future__ import annotations

from pathlib import Path

import click

from auditkeep.cli.common import err, global_options, ledger, out, print_json, settings
from auditkeep.cli.retention import cli_actor
from auditkeep.config import open_store
from auditkeep.ledger.datadir import DataDirError
from auditkeep.ledger.key_events import record_signing_rotation
from auditkeep.ledger.rotation import rotate


@click.group("signing-key")
def signing_key() -> None:
    """The log's checkpoint signing key."""


@signing_key.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the old and new verifier keys and the sizes as JSON.")
@global_options
def rotate_command(as_json: bool) -> None:
    """Make a new signing key and make it current.

    Checkpoints are signed from now on with the new key and, until the next rotation, with
    the previous one too (two signature lines). The store keeps every verifier key with the
    size each tenant's log had when it started signing (`auditkeep pubkey --all`): the next
    checkpoint of each tenant covers its entries from there. Restart running writers
    (serve, every node) so that they load the new key; until then they sign with the old
    one only. A rotation killed half-way is completed by the next writer that opens the
    data directory, or by running this again."""
    s = settings()
    if s.signing_key_text():
        raise click.UsageError(
            "the signing key comes from the configuration (signing_key / AUDITKEEP_SIGNING_KEY), not a key file: "
            "rotation replaces the file data/signing.key; unset it first"
        )
    with ledger() as lg:  # a writer: checks the current key and completes an interrupted rotation
        log_id = lg.identity.log_id
    store = open_store(s, create=False)
    try:
        try:
            old, new = rotate(store, Path(s.data), log_id)
        except FileNotFoundError as exc:
            raise DataDirError(f"signing key file not found: {exc.filename}") from None
    finally:
        store.close()
    with ledger() as lg:  # opened again: the new key signs from here on
        record_signing_rotation(lg, old, new, cli_actor())
    if as_json:
        print_json({"old": old.vkey, "new": new.vkey, "first_sizes": new.first_sizes})
        return
    out.print(f"new verifier key   {new.vkey}", highlight=False)
    out.print(f"previous key       {old.vkey} (co-signs until the next rotation)", highlight=False)
    err.print(
        "the next checkpoint of every tenant is signed with both keys. Give auditors the new key "
        "(`auditkeep pubkey > new.vkey`) and restart running writers.",
        highlight=False,
    )
