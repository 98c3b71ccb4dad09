"""``auditkeep witness``: run a C2SP tlog-witness that cosigns other logs' checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click

from auditkeep.cli.common import out
from auditkeep.witness.store import WitnessDir, WitnessDirError


class WitnessUsage(click.ClickException):
    exit_code = 2


def _wdir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--data", "wdir", metavar="WDIR", required=True,
                        help="The witness's own directory (its key and state).")(f)  # fmt: skip


def _open(path: str) -> WitnessDir:
    wdir = WitnessDir(path)
    try:
        wdir.cosigner()
    except WitnessDirError as exc:
        raise WitnessUsage(str(exc)) from None
    return wdir


@click.group()
def witness() -> None:
    """A witness: cosigns checkpoints of the logs it trusts, never a rollback or a fork."""


@witness.command("init")
@_wdir_option
@click.option("--name", required=True, metavar="NAME", help="The witness's key name, e.g. witness.example.org/w1.")
def init_cmd(wdir: str, name: str) -> None:
    """Create a witness: its Ed25519 key (mode 0600) and empty state; print its verifier key."""
    cosigner = WitnessDir(wdir).init(name)
    out.print(f"witness directory  {wdir}")
    out.print(f"verifier key       {cosigner.verifier().vkey()}", highlight=False)


@witness.command("add-log")
@_wdir_option
@click.option("--origin", required=True, metavar="ORIGIN", help="The log's checkpoint origin line.")
@click.option("--key", "vkey", required=True, metavar="VKEY",
              help="The log's verifier key for that origin (auditkeep pubkey --tenant T).")  # fmt: skip
def add_log(wdir: str, origin: str, vkey: str) -> None:
    """Trust a log: cosign checkpoints of ORIGIN signed by VKEY (repeat for a rotated key)."""
    w = _open(wdir)
    try:
        verifier = w.add_log(origin, vkey)
    except (ValueError, WitnessDirError) as exc:
        raise WitnessUsage(str(exc)) from None
    out.print(f"witnessing {origin} signed by {verifier.vkey()}", highlight=False)


@witness.command("serve")
@_wdir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8780, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
def serve(wdir: str, host: str, port: int) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) until interrupted."""
    import uvicorn

    from auditkeep.witness.app import create_witness_app
    from auditkeep.witness.files import DirLock
    from auditkeep.witness.witness import Witness

    w = _open(wdir)
    lock = DirLock(w.path)
    if not lock.acquire():
        raise WitnessUsage(f"another witness process serves {wdir}")
    try:
        witness_ = Witness(w)
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        click.echo(f"witness {witness_.cosigner.verifier().vkey()} on http://{host}:{port}", err=True)
        config = uvicorn.Config(
            create_witness_app(witness_), host=host, port=port, log_level="warning",
            access_log=False, timeout_keep_alive=30, h11_max_incomplete_event_size=16 * 1024,
        )  # fmt: skip
        uvicorn.Server(config).run()
    finally:
        lock.release()
