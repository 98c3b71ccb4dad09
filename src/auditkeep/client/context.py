"""The audit context lives in the model layer so the embedded ledger merges it too."""

from auditkeep.model.context import Scope, bind, context, current, merge_into

__all__ = ["Scope", "bind", "context", "current", "merge_into"]
