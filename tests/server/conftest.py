"""Fixtures of the server tests: real servers in subprocesses (see http_server_support)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_server_support import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("srv") / "data")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def factory(
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        data: Path | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> Server:
        srv = Server(data or tmp_path / f"data{len(made)}", env, args, verify)
        made.append(srv)
        return srv

    yield factory
    for srv in made:
        srv.stop()



@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server per store (module-wide): embedded SQLite, and PostgreSQL in a schema of its own."""
    args: tuple[str, ...] = ()
    schema = None
    if request.param == "postgres":
        import pg_support  # type: ignore[import-not-found]

        pg_support.require_postgres()
        schema = pg_support.new_schema_name("srv")
        args = ("--db", pg_support.url_for_schema(schema))
    srv = Server(tmp_path_factory.mktemp(f"srv-{request.param}") / "data", args=args)
    try:
        yield srv
    finally:
        srv.stop()
        if schema is not None:
            pg_support.drop_schema(schema)
    assert "Traceback" not in srv.output(), srv.output()
