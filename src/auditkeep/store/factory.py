"""Opening a store: the one place that turns a location into a :class:`Store`.

``postgresql://...`` (or ``postgres://``) opens PostgreSQL; ``sqlite:///dir``, or a plain
path, the embedded store in the data directory ``dir``.
"""

from __future__ import annotations

from pathlib import Path

from auditkeep.errors import ConfigError, DataDirError
from auditkeep.store.base import Store

__all__ = ["is_postgres", "open_store", "sqlite_directory"]


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_directory(location: str | Path) -> Path:
    """The data directory an embedded-store location names (``sqlite:///dir`` or ``dir``)."""
    if isinstance(location, Path):
        return location
    if location.startswith("sqlite://"):
        return Path(location[len("sqlite://") :])
    if "://" in location:
        raise ConfigError(
            f"unsupported database URL {location.split(':', 1)[0]!r}: use postgresql://... or sqlite:///path"
        )
    return Path(location)


def open_store(
    location: str | Path,
    *,
    durability: str = "full",
    read_only: bool = False,
    create: bool = True,
    migrate: bool = True,
    pool_size: int | None = None,
) -> Store:
    """The store at ``location``. ``read_only`` opens it so that it never writes (a read-only
    session on PostgreSQL); ``create=False`` refuses an embedded store that does not exist yet
    (:class:`DataDirError`) instead of creating it. ``migrate=False`` leaves a PostgreSQL
    schema as it is; ``pool_size`` caps its connection pool."""
    if isinstance(location, str) and is_postgres(location):
        from auditkeep.store.postgres import PostgresStore

        if pool_size is None:
            return PostgresStore(location, durability=durability, read_only=read_only, migrate=migrate)
        return PostgresStore(
            location, durability=durability, read_only=read_only, migrate=migrate, min_size=1, max_size=pool_size
        )
    from auditkeep.store.sqlite import SQLiteStore

    directory = sqlite_directory(location)
    if (read_only or not create) and not (directory / "log.db").exists():
        raise DataDirError(f"no auditkeep data in {directory}; run `auditkeep init` first")
    return SQLiteStore(directory, durability=durability, read_only=read_only)
