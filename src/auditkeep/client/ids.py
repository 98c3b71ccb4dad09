"""Event ids for the SDK: the model's UUIDv7 generator."""

from auditkeep.model.ids import IdGenerator, new_id

__all__ = ["IdGenerator", "new_id"]
