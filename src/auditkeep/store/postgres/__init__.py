"""The PostgreSQL store: several stateless auditkeep nodes sharing one database.

Appends to one tenant's log are serialised by a row lock on its head (``SELECT ... FOR
UPDATE`` in tenant order), held while the ledger reads the head, sequences, hashes and
writes, so two nodes never fork a tree; appends to different tenants run in parallel.
Entries are written with binary ``COPY`` into monthly partitions (by received time).

Every statement runs on a pooled connection with ``prepare_threshold=None`` and
``plan_cache_mode=force_custom_plan``: a generic plan for a search picks an index without
seeing the values and was measured 30-170x slower. Lost connections surface as
:class:`StoreUnavailable` (HTTP 503); the pool replaces broken connections by itself.

``durability="full"`` commits with ``synchronous_commit=on`` (an acknowledged event survives
a crash of the database server); ``"normal"`` uses ``off``: commits return before the WAL is
flushed, so a database crash may lose the last fraction of a second of acknowledged events
(never corrupting the log).

The package by job: ``url`` (auditkeep's URL parameters), ``connection`` (the pool and its
sessions), ``migrations`` (schema versions and monthly partitions), ``documents`` (the
``docs`` table) and ``store`` (the log itself: appends, reads, cursors, projection).
"""

from auditkeep.store.postgres.store import PostgresStore
from auditkeep.store.postgres.url import OWN_PARAMS, redact_url, split_url

__all__ = ["OWN_PARAMS", "PostgresStore", "redact_url", "split_url"]
