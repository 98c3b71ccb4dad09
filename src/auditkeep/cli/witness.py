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


@witness.command("check")
@_wdir_option
@click.option("--log", "log_url", required=True, metavar="URL", help="The log server, e.g. https://audit.example.com.")
@click.option("--key", "api_key", envvar="AUDITKEEP_KEY", metavar="KEY", default=None,
              help="An API key of the log with the read or verify scope (names the tenant) [env AUDITKEEP_KEY].")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA bundle that signed the log server's certificate.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(wdir: str, log_url: str, api_key: str | None, ca_file: str | None, as_json: bool) -> None:
    """Ask a running log for its latest checkpoint and a consistency proof from the size this
    witness cosigned last; exit 1 on a rollback or a fork. Cosigns and changes nothing."""
    import sys

    import httpx

    from auditkeep.cli.common import print_json
    from auditkeep.witness.check import check_log

    w = _open(wdir)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    verify: str | bool = ca_file or True
    try:
        with httpx.Client(base_url=log_url.rstrip("/"), headers=headers, timeout=30, verify=verify) as c:
            r = c.get("/v1/checkpoints/latest")
            _ok(r, "latest checkpoint")

            def fetch_proof(old: int, new: int) -> list[bytes]:
                p = c.get("/v1/proofs/consistency", params={"from": old, "to": new})
                _ok(p, "consistency proof")
                try:
                    return [bytes.fromhex(h) for h in p.json()["hashes"]][:64]
                except (ValueError, KeyError, TypeError):
                    raise WitnessUsage("the log's consistency proof is malformed") from None

            result = check_log(w, r.text, fetch_proof)
    except httpx.HTTPError as exc:
        raise WitnessUsage(f"cannot reach the log at {log_url}: {exc}") from None
    except ValueError as exc:
        raise WitnessUsage(str(exc)) from None
    if as_json:
        print_json({"origin": result.origin, "verdict": result.verdict, "cosigned_size": result.cosigned_size,
                    "log_size": result.log_size, "message": result.message})  # fmt: skip
    else:
        color = "green" if result.ok else "red"
        out.print(f"[{color}]{result.verdict}[/{color}] {result.origin}: {result.message}", highlight=False)
    if not result.ok:
        sys.exit(1)


def _ok(r: Any, what: str) -> None:
    if r.status_code != 200:
        text = " ".join(r.text.split())[:200]
        raise WitnessUsage(f"the log refused the {what}: HTTP {r.status_code} {text}")
