"""A package's names imported on first use (PEP 562), so importing the package stays cheap:
``import auditkeep.client`` must not load the server side, and a child process that needs
one name of ``auditkeep.ledger`` must not pay for all of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def module_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` answering each name of ``names`` from the module it maps to."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
