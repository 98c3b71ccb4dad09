"""The review console: server-rendered pages under ``/ui/`` for people (search, events with
proofs checked in the browser), signed in with console accounts kept in the store."""

from auditkeep.console.app import console_app

__all__ = ["console_app"]
