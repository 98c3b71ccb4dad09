"""Documents named by an unambiguous prefix of their id, as people type them from a listing
(``auditkeep quarantine show 3f2a9c``, ``auditkeep alerts resolve 01a24``)."""

from __future__ import annotations

from auditkeep.errors import UserError
from auditkeep.store.base import Store

MIN_PREFIX = 6
MAX_SCAN = 100_000


class AmbiguousPrefix(UserError, ValueError):
    """More than one document's id starts with the prefix."""


def resolve_prefix(store: Store, collection: str, prefix: str, tenant: str | None = None) -> str | None:
    """The id of the one document of ``collection`` whose id is ``prefix`` or starts with it
    (prefixes of at least MIN_PREFIX characters); None when there is none;
    :class:`AmbiguousPrefix` when several match."""
    if store.doc_get(collection, prefix) is not None:
        return prefix
    if len(prefix) < MIN_PREFIX:
        return None
    hits = [d.id for d in store.doc_list(collection, tenant=tenant, limit=MAX_SCAN) if d.id.startswith(prefix)]
    if len(hits) > 1:
        shown = ", ".join(sorted(hits)[:3])
        raise AmbiguousPrefix(f"{len(hits)} ids start with {prefix!r} ({shown}{', ...' if len(hits) > 3 else ''}): give more of it")
    return hits[0] if hits else None
