"""The platform's one small exception hierarchy."""
from __future__ import annotations

__all__ = ["InventoryError", "SchemaError", "UnknownSchemaError", "MalformedRecordError"]


class InventoryError(Exception):
    """Base of every error the platform raises on purpose."""


class SchemaError(InventoryError):
    """A record could not be encoded or decoded with the project's Avro schemas."""


class UnknownSchemaError(SchemaError):
    """A record names a writer schema (by fingerprint) that this process does not know."""


class MalformedRecordError(InventoryError):
    """A record decoded, but breaks the topic's contract (e.g. its key is not its SKU)."""
