"""What ``auditkeep gateway``'s commands share: the refusal error and the ``--server``
options. A module of its own so that the gateway sub-commands (``gateway_postgres``) and the
group that adds them (``gateway``) do not import each other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class Refused(click.ClickException):
    """A refusal the user caused (self-approval, already decided, server said no): exit 2."""

    exit_code = 2


def remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--server URL --key KEY [--ca-file FILE]``: act through a server instead of the store."""
    f = click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="CA bundle that signed the server's certificate.")(f)  # fmt: skip
    f = click.option("--key", "api_key", envvar="AUDITKEEP_KEY", metavar="KEY", default=None,
                     help="API key for --server [env AUDITKEEP_KEY].")(f)  # fmt: skip
    return click.option("--server", envvar="AUDITKEEP_URL", metavar="URL", default=None,
                        help="An auditkeep server instead of the local store [env AUDITKEEP_URL].")(f)  # fmt: skip
