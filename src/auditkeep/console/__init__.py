"""The review console: server-rendered pages under ``/ui/`` for people (search, events with
proofs checked in the browser), signed in with console accounts kept in the store.

Its one name is loaded on first use (``lazyload``): ``auditkeep init`` and ``users`` need
the console's key (``secretbox.py``) and accounts, not its app and Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.console.app import console_app

__getattr__ = module_getattr(__name__, {"console_app": "auditkeep.console.app"})

__all__ = ["console_app"]
