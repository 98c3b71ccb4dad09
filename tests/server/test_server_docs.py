"""Every route is in the OpenAPI document, and every endpoint and serve/keys option in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import click
from starlette.routing import Route

from auditkeep.cli.keys import keys
from auditkeep.cli.serve import serve
from auditkeep.config import Settings
from auditkeep.ledger import Ledger
from auditkeep.server import ServerContext, create_app
from auditkeep.server.openapi import OPERATIONS

DOCS = Path(__file__).parents[2] / "docs"


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in DOCS.glob("*.md"))


def test_every_route_is_described(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        app = create_app(ServerContext(Settings(data=str(tmp_path / "data")), lg), close_ledger=False)
        router = app.app.router  # type: ignore[attr-defined]
        described = {(op.method.upper(), op.path) for op in OPERATIONS}
        for route in router.routes:
            assert isinstance(route, Route)
            for method in route.methods or ():
                if method == "HEAD":
                    continue
                if route.path == "/openapi.json" or route.path == "/docs":
                    continue
                if route.path.endswith("/tile/{path:path}"):  # described as its two path shapes
                    assert ("GET", "/v1/logs/{tenant}/tile/{level}/{tile_index}") in described
                    continue
                assert (method, route.path) in described, (method, route.path)


def test_every_endpoint_and_option_is_documented() -> None:
    text = _docs_text()
    for op in OPERATIONS:
        head = re.split(r"\{", op.path)[0].rstrip("/")
        assert head in text, f"{op.method.upper()} {op.path} is described nowhere in docs/*.md"
    for command in (serve, *keys.commands.values()):
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("data_", "db_", "config_"):
                assert any(o in text for o in param.opts), (command.name, param.opts)
