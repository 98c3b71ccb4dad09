"""The PostgreSQL store's connections: a psycopg pool whose sessions carry the schema,
the durability and the read-only setting, and database errors turned into ours."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditkeep.store.base import StoreError, StoreUnavailable
from auditkeep.store.postgres.url import redact_url, split_url
from auditkeep.store.postgres_schema import Month


class PgConnections:
    """A pool of sessions on one database (and schema); the base of :class:`PostgresStore`."""

    def __init__(
        self,
        url: str,
        durability: str = "full",
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        application_name: str = "auditkeep",
        read_only: bool = False,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        conninfo, own = split_url(url)
        self.url = redact_url(conninfo)
        self._conninfo = conninfo
        self.schema = schema or own.get("schema")
        if "pool_max" in own:
            try:
                max_size = int(own["pool_max"])
            except ValueError:
                raise ValueError("pool_max in the database URL must be a number") from None
        max_size = max(1, max_size)
        min_size = min(min_size, max_size)
        self.durability = durability
        self.read_only = read_only
        self.projection_writable = not read_only
        self._closed = False
        self._months: set[Month] = set()
        self._ahead_until = 0
        self._months_lock = threading.Lock()
        self._close_hooks: list[Any] = []
        self._pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, round(timeout)),
                "application_name": application_name,
            },
            configure=self._configure,
            check=ConnectionPool.check_connection,
            reconnect_timeout=max(30.0, timeout * 6),
            name=f"auditkeep-{os.getpid()}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc

    # connections -------------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self.schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        conn.execute("SET synchronous_commit TO " + ("on" if self.durability == "full" else "off"))
        conn.execute("SET plan_cache_mode TO force_custom_plan")
        if self.read_only:
            conn.execute("SET default_transaction_read_only TO on")

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; database errors become StoreUnavailable (try again: the
        server is down, restarting, or the connection broke) or StoreError."""
        if self._closed:
            raise StoreError("store is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:  # includes the pool's timeouts
            raise StoreUnavailable(f"PostgreSQL unavailable: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"postgresql: {_first_line(exc)}") from exc

    def on_close(self, hook: Any) -> None:
        """Call ``hook()`` once the store has closed (tests drop their schema then)."""
        self._close_hooks.append(hook)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        for hook in self._close_hooks:
            hook()

    def _advisory_key(self, conn: psycopg.Connection[Any], purpose: str) -> int:
        """An advisory lock key for ``purpose`` in this store's schema (it may not exist yet)."""
        row = conn.execute(
            "SELECT hashtextextended(%s || coalesce(%s, current_schema(), ''), 0)",
            (f"auditkeep.{purpose}.", self.schema),
        ).fetchone()
        assert row is not None
        return int(row[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
