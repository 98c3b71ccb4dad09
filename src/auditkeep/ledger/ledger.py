"""The ledger: the only writer of the log (it appends and signs), and a reader too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkeep.errors import ClosedError
from auditkeep.ledger.append import Pending, Receipt, Sequencer
from auditkeep.ledger.config import LedgerConfig
from auditkeep.ledger.datadir import Identity, establish
from auditkeep.ledger.follower import FollowerProcess
from auditkeep.ledger.reader import (
    ERASED,
    ConsistencyProof,
    Expired,
    InclusionProof,
    LogReader,
    NotFound,
    Page,
    Record,
    check_tenant,
    decode_cursor,
    encode_cursor,
)
from auditkeep.ledger.writer import Writer
from auditkeep.model.context import active as context_active
from auditkeep.model.context import merge_into
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.model.event import RESERVED_PREFIX, Event, Submitter
from auditkeep.model.ids import uuid7_batch
from auditkeep.model.validate import convert_batch
from auditkeep.model.validate_batch import validate_batch
from auditkeep.store.base import SUBJECTS_ARE_ACTORS, Store

if TYPE_CHECKING:
    from auditkeep.crypto.atrest import EncryptionSettings
    from auditkeep.policy.pipeline import Pipeline


class Ledger(LogReader):
    """Appends events to per-tenant Merkle logs and answers searches and proofs.

    ``Ledger.open(path)`` opens (or creates) the embedded SQLite store in a data directory.
    Appends are durable when :meth:`append` returns.
    """

    def __init__(
        self,
        store: Store,
        identity: Identity,
        config: LedgerConfig | None = None,
        *,
        background: bool = True,
        now_ns: Callable[[], int] = time.time_ns,
        pipeline: Pipeline | None = None,
    ) -> None:
        super().__init__(store, config, log_id=identity.log_id)
        self.identity = identity
        # Capture policy and redaction for events submitted with a source name (sources and
        # the HTTP API); the server's and the alert runner's own events pass untouched.
        self.pipeline = pipeline
        # Recorded in the leaves of appends that name no submitter of their own: a program
        # embedding the ledger; ``auditkeep serve`` and the CLI replace it.
        self.submitter = Submitter("embedded")
        self._seq = Sequencer(self.config, identity, now_ns)
        if self.config.subject_field != "actor.id" and store.meta(SUBJECTS_ARE_ACTORS) != "0":
            store.set_meta(SUBJECTS_ARE_ACTORS, "0")  # before this writer appends (see the key)
        self._follower: FollowerProcess | None = None
        directory = getattr(store, "directory", None)
        if background and store.dialect == "sqlite" and directory is not None:
            # Off the appending interpreter (see auditkeep.ledger.follower); started now so it
            # is ready (~0.3 s) by the time the first commits land.
            self._follower = FollowerProcess(directory, self.config.durability, getattr(store, "encryption", None))
            self._writer = Writer(store, self._seq, self.config.max_group_events)
            self._follower.start()
        else:
            self._writer = Writer(store, self._seq, self.config.max_group_events, self._projector.notify)
            if background:
                self._projector.start()

    @classmethod
    def open(
        cls,
        path: str | Path = "auditkeep-data",
        config: LedgerConfig | None = None,
        *,
        create: bool = True,
        log_id: str | None = None,
        signing_key: str | None = None,
        background: bool = True,
        encryption: EncryptionSettings | None = None,
    ) -> Ledger:
        from auditkeep.ledger.atrest import at_rest
        from auditkeep.store.factory import open_store

        cfg = config or LedgerConfig()
        directory = Path(path)
        store = open_store(directory, durability=cfg.durability, create=create)
        try:
            store = at_rest(store, encryption, directory, create=create)
            identity, _ = establish(store, directory, log_id=log_id, signing_key=signing_key, create=create)
        except BaseException:
            store.close()
            raise
        return cls(store, identity, cfg, background=background)

    def close(self) -> None:
        """Commit what is queued, sign final checkpoints, stop background work."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        if self._follower is not None:
            self._follower.stop()
        self._projector.close()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # tenants ---------------------------------------------------------------------------------

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener`` (in the thread that committed: the writer thread or a caller of
        :meth:`append`; keep it short) with the tenant ids that grew."""
        self._writer.add_listener(listener)

    def committed_elsewhere(
        self, tenant_ids: set[int], skip: Callable[[set[int]], None] | None = None
    ) -> None:
        """Tell the commit listeners (but ``skip``) that another process sharing this store
        committed to ``tenant_ids`` (the server's alert runner child, for one)."""
        self._writer.notify(tenant_ids, skip)

    # appending -------------------------------------------------------------------------------

    def submit(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes | str],
        tenant: str = "default",
        *,
        source: str | None = None,
        submitter: Submitter | None = None,
    ) -> Future[list[Receipt]]:
        """Validate and queue a batch; the future resolves when it is durable.

        Raises :class:`ValidationError` at once (naming the position and field) if any event
        is invalid: nothing of the batch is stored. Event objects are normalised in place.
        Actions in the ``auditkeep.`` namespace are refused: only auditkeep's own code
        writes them (through :meth:`submit_own`).

        ``submitter`` (who appends, as the caller established it: an API key, a collector)
        is recorded in every leaf; without it, :attr:`submitter`.

        With a ``source`` (``api``, ``kubernetes``, ...) and a :attr:`pipeline`, each event
        first passes the capture policy and redaction: events the policy drops get no
        receipt, so the receipts cover the kept events, in order. Error positions still
        count every event given.
        """
        return self._submit(events, tenant, source, submitter or self.submitter, own=False, inline=False)

    def submit_own(
        self, events: Sequence[Event | Mapping[str, Any]], tenant: str, submitter: Submitter
    ) -> Future[list[Receipt]]:
        """Queue auditkeep's own events (``auditkeep.`` actions allowed, no capture policy):
        key changes, read audits, alerts, approvals. Never reachable from a client's input."""
        return self._submit(events, tenant, None, submitter, own=True, inline=False)

    def append_own(
        self, events: Sequence[Event | Mapping[str, Any]], tenant: str, submitter: Submitter, timeout: float | None = None
    ) -> list[Receipt]:
        """:meth:`submit_own`, returning once durable."""
        return self._submit(events, tenant, None, submitter, own=True, inline=True).result(timeout)

    def _submit(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes | str],
        tenant: str,
        source: str | None,
        submitter: Submitter,
        *,
        own: bool,
        inline: bool,
    ) -> Future[list[Receipt]]:
        if self._closed:
            raise ClosedError("ledger is closed")
        evs = convert_batch(events)
        if not own:
            for i, ev in enumerate(evs):
                if ev.action.startswith(RESERVED_PREFIX):
                    raise ValidationError(
                        f"actions in the {RESERVED_PREFIX} namespace are reserved for auditkeep's own events",
                        "action",
                        i,
                    )
        positions: list[int] | None = None
        if source is not None and self.pipeline is not None:
            evs, positions = self._apply_policy(evs, source)
        try:
            exact = validate_batch(evs, self.config.limits, tenant)
        except ValidationError as exc:
            if positions is None or exc.position is None:
                raise
            raise exc.at(positions[exc.position]) from None
        client = [ev.id is not None for ev in evs]
        missing = client.count(False)
        if missing:
            fresh = iter(uuid7_batch(missing))
            for ev in evs:
                if ev.id is None:
                    ev.id = next(fresh)
        tid = self.tenant_id(tenant, create=True)
        pending = Pending(tenant, tid, evs, exact, client, submitter)
        if not evs:
            pending.future.set_result([])
            return pending.future
        self._seq.seal_ahead(pending)  # in this thread: the writer's work for it is then shorter
        self._writer.submit(pending, inline)
        if positions is None:
            return pending.future
        return _renumbered(pending.future, positions)

    def _apply_policy(self, evs: list[Event], source: str) -> tuple[list[Event], list[int]]:
        """The events the pipeline keeps (changed in place) and their positions in ``evs``."""
        assert self.pipeline is not None
        return self.pipeline.process_kept(evs, source)

    def append(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes | str],
        tenant: str = "default",
        timeout: float | None = None,
        *,
        source: str | None = None,
        submitter: Submitter | None = None,
    ) -> list[Receipt]:
        """Append a batch, all or nothing; returns one receipt per kept event once durable
        (every event, unless ``source`` names a source whose policy drops some)."""
        # The caller blocks anyway, so it commits the batch itself when the writer is idle.
        return self._submit(events, tenant, source, submitter or self.submitter, own=False, inline=True).result(timeout)

    def record(self, tenant: str = "default", **fields: Any) -> Receipt:
        """Append one event given as keyword arguments (``actor=``, ``action=``, ...),
        completed from the active ``auditkeep.context``; returns once it is durable."""
        return self.append([merge_into(fields)], tenant)[0]

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str = "default") -> list[Receipt]:
        """Append events (dicts are completed from the active ``auditkeep.context``)."""
        if not context_active():  # nothing to merge: the caller's dicts are read, never changed
            return self.append([e if type(e) is dict or isinstance(e, Event) else dict(e) for e in events], tenant)
        return self.append([e if isinstance(e, Event) else merge_into(dict(e)) for e in events], tenant)

    # checkpoints and proofs ------------------------------------------------------------------

    def checkpoint(self, tenant: str = "default", new: bool = False) -> str:
        """The latest signed checkpoint note; ``new`` signs the current head first (and one
        is signed when the log has none yet)."""
        tid = self.tenant_id(tenant)
        if new or self.store.latest_checkpoint(tid) is None:
            self._writer.sign_now(tid)
        return super().checkpoint(tenant)

    def _covering_checkpoint(self, tid: int, need: int, size: int | None) -> tuple[int, str]:
        if size is None:
            row = self.store.latest_checkpoint(tid)
            if row is None or row.size < need:
                self._writer.sign_now(tid)
        return super()._covering_checkpoint(tid, need, size)


def _renumbered(fut: Future[list[Receipt]], positions: list[int]) -> Future[list[Receipt]]:
    """``fut`` whose errors (a conflict, an event too large once sealed) name the caller's
    positions, not the kept events'."""
    out: Future[list[Receipt]] = Future()

    def done(f: Future[list[Receipt]]) -> None:
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
            return
        if isinstance(exc, ConflictError | ValidationError) and exc.position is not None and 0 <= exc.position < len(positions):
            exc = ConflictError(exc.event_id, positions[exc.position]) if isinstance(exc, ConflictError) else exc.at(positions[exc.position])
        out.set_exception(exc)

    fut.add_done_callback(done)
    return out


__all__ = [
    "ERASED",
    "ConsistencyProof",
    "Expired",
    "InclusionProof",
    "Ledger",
    "NotFound",
    "Page",
    "Receipt",
    "Record",
    "check_tenant",
    "decode_cursor",
    "encode_cursor",
]
