"""Avro schemas of every command and event, and their wire codec (fastavro).

Records travel in Avro's *single-object encoding* (spec 1.11): two marker bytes ``C3 01``, the
writer schema's 8-byte little-endian CRC-64-AVRO fingerprint, then the binary body. A reader finds
the writer schema by fingerprint, so a producer may move to a newer schema version and readers
resolve it to theirs (added fields with defaults are dropped or filled). No schema registry needed.

Named types live one per file, ``<namespace>.<Name>.avsc``, which is how fastavro's
``load_schema`` resolves references between files.

Every version of a top-level schema that has been released stays readable: its canonical form is
kept in ``released/<name>.<fingerprint>.json`` and registered as a known writer, so records an
older producer wrote (or that wait in a topic across an upgrade) still decode. Before changing a
schema, add its current version there, written by ``released_form`` (``tests/unit/test_schemas.py``
checks they all resolve).

Logical types (a product's ``unit_cost``: ``decimal``, decoded as ``decimal.Decimal``) are applied
by fastavro from the *writer* schema, and the parsing canonical form drops them, so a bare canonical
form would decode a cost as raw bytes. ``released_form`` keeps them (the fingerprint is unchanged),
and a codec never lets a released copy replace its own schema under the same fingerprint.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from common.errors import SchemaError, UnknownSchemaError

__all__ = [
    "SCHEMA_DIR",
    "COMMAND_SCHEMA",
    "EVENT_SCHEMA",
    "AvroCodec",
    "schema_fingerprint",
    "released_writers",
    "released_form",
    "command_codec",
    "event_codec",
    "alert_codec",
    "warehouse_command_codec",
    "warehouse_event_codec",
    "order_command_codec",
    "order_event_codec",
]

SCHEMA_DIR = Path(__file__).resolve().parent
RELEASED_DIR = SCHEMA_DIR / "released"
COMMAND_SCHEMA = "inventory.commands.StockCommand"
EVENT_SCHEMA = "inventory.events.StockEvent"
_MAGIC = b"\xc3\x01"
_HEADER_LEN = len(_MAGIC) + 8


def load(full_name: str, directory: Path = SCHEMA_DIR) -> Any:
    """The parsed schema of ``<directory>/<full_name>.avsc`` with its references resolved."""
    return load_schema(str(directory / f"{full_name}.avsc"), _write_hint=False)


def schema_fingerprint(parsed: Any) -> bytes:
    canonical = to_parsing_canonical_form(parsed)
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


class AvroCodec:
    """Encodes with one writer schema; decodes any known writer version into the reader schema."""

    def __init__(self, reader_schema: Any, known_writers: tuple[Any, ...] = ()) -> None:
        self.schema = reader_schema
        self._header = _MAGIC + schema_fingerprint(reader_schema)
        # Parsed once: fastavro re-parses an unparsed schema on every call, which made encoding
        # and decoding a decision about five times slower (bench/README.md).
        self._parsed = parse_schema(reader_schema)
        self._writers: dict[bytes, Any] = {}
        for schema in (reader_schema, *known_writers):
            self.register(schema)
        # The reader's own writer: its records need no schema resolution, which fastavro does
        # field by field and which made a decode about 40% slower.
        self._own = self._writers[self._header[2:]]

    def register(self, writer_schema: Any) -> None:
        """Accept records written with another version of this schema."""
        # The first registration of a fingerprint wins: the reader's own schema (registered
        # first) keeps its logical types even if a copy without them is released under its name.
        self._writers.setdefault(schema_fingerprint(writer_schema), parse_schema(writer_schema))

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SchemaError(f"record does not fit {self.schema['name']}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray)) or len(data) < _HEADER_LEN:
            raise SchemaError("not an Avro single-object record (too short)")
        if data[:2] != _MAGIC:
            raise SchemaError("not an Avro single-object record (bad marker bytes)")
        writer = self._writers.get(bytes(data[2:_HEADER_LEN]))
        if writer is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {data[2:_HEADER_LEN].hex()}")
        body = io.BytesIO(data[_HEADER_LEN:])
        try:
            reader = None if writer is self._own else self._parsed
            record = schemaless_reader(body, writer, reader, return_record_name=True)
        except Exception as exc:  # fastavro raises many types for truncated or corrupt bodies
            raise SchemaError(f"cannot decode {self.schema['name']}: {exc}") from exc
        # A valid record with bytes after it is not that record: refuse it rather than guess.
        if body.tell() != len(data) - _HEADER_LEN:
            raise SchemaError(f"{len(data) - _HEADER_LEN - body.tell()} bytes after the "
                              f"{self.schema['name']} record")
        return record


def released_writers(full_name: str) -> tuple[Any, ...]:
    """The earlier released versions of a top-level schema (``released/``)."""
    return tuple(json.loads(path.read_text())
                 for path in sorted(RELEASED_DIR.glob(f"{full_name}.*.json")))


def _with_logical_types(canonical: Any, original: Any) -> Any:
    """``canonical`` (a parsing canonical form, as JSON) with the logical types of ``original``
    (the same schema, as written) put back where the canonical form reduced them to a primitive."""
    if isinstance(original, dict) and "logicalType" in original and isinstance(canonical, str):
        keep = ("type", "logicalType", "precision", "scale")
        return {k: original[k] for k in keep if k in original}
    if isinstance(canonical, list) and isinstance(original, list):
        return [_with_logical_types(c, o) for c, o in zip(canonical, original)]
    if not (isinstance(canonical, dict) and isinstance(original, dict)):
        return canonical
    out = dict(canonical)
    for key in ("type", "items", "values"):
        if key in out and key in original:
            out[key] = _with_logical_types(out[key], original[key])
    if "fields" in out:
        out["fields"] = [_with_logical_types(c, o) for c, o in zip(out["fields"], original["fields"])]
    return out


def released_form(full_name: str) -> str:
    """The text of ``released/<full_name>.<fingerprint>.json`` for the schema as it is now: its
    parsing canonical form, logical types kept."""
    schema = load(full_name)
    canonical = json.loads(to_parsing_canonical_form(schema))
    return json.dumps(_with_logical_types(canonical, schema), indent=1) + "\n"


_codecs: dict[str, AvroCodec] = {}


def _codec(name: str) -> AvroCodec:
    if name not in _codecs:
        _codecs[name] = AvroCodec(load(name), released_writers(name))
    return _codecs[name]


def command_codec() -> AvroCodec:
    return _codec(COMMAND_SCHEMA)


def event_codec() -> AvroCodec:
    return _codec(EVENT_SCHEMA)


def alert_codec() -> AvroCodec:
    return _codec("inventory.events.LowStockAlert")


def warehouse_command_codec() -> AvroCodec:
    return _codec("inventory.warehouses.WarehouseCommand")


def warehouse_event_codec() -> AvroCodec:
    return _codec("inventory.warehouses.WarehouseEvent")


def order_command_codec() -> AvroCodec:
    return _codec("inventory.orders.OrderCommand")


def order_event_codec() -> AvroCodec:
    return _codec("inventory.orders.OrderEvent")
