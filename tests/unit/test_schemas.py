"""The Avro wire format: round trips, schema evolution, and what a malformed record raises."""
from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from common.errors import SchemaError, UnknownSchemaError
from schemas import (
    COMMAND_SCHEMA, EVENT_SCHEMA, SCHEMA_DIR, AvroCodec, alert_codec, command_codec, event_codec, load,
    released_form, released_writers, schema_fingerprint, warehouse_command_codec, warehouse_event_codec,
)
from streams.stock.records import (
    AdjustStock, AllocateLine, Allocated, AllocationPart, AllocationRejected, BackorderCancelled, Backordered,
    CancelBackorder, AnnounceIncoming, Command, CommandRejected,
    CreateProduct, Event, Expired, LowStockThresholdSet, ProductCreated, RejectReason, Reserve, Reserved,
    SetLowStockThreshold,
    Tick, TransferStock, ArriveTransfer, TransferredOut, TransferArrived,
    command_from_avro, command_to_avro, event_from_avro, event_to_avro,
)
from streams.warehouses.records import (
    ConfirmSpace, CreateWarehouse, EventKind, FreeSpace, ReceiveStock, Refusal, ReleaseSpace, WarehouseCommand,
    WarehouseEvent, warehouse_command_from_avro, warehouse_command_to_avro, warehouse_event_from_avro,
    warehouse_event_to_avro,
)


def test_every_schema_file_parses_and_is_named_after_its_type():
    files = sorted(SCHEMA_DIR.glob("*.avsc"))
    assert len(files) >= 15
    for path in files:
        schema = json.loads(path.read_text())
        assert f"{schema['namespace']}.{schema['name']}" == path.stem


@pytest.mark.parametrize("body", [AdjustStock("w", -3, "damaged"), AdjustStock("w", 4, "received", "hold-1"),
                                  Reserve("r", "o", "w", 2, 900_000),
                                  SetLowStockThreshold("w", 4), Tick(),
                                  CreateProduct("Shirt, L", parent="SHIRT", attributes={"size": "L"}),
                                  AllocateLine("o-1", 2, 7), AllocateLine("o-1", 0, 3, "north", "most_stock",
                                                                          ("south", "north"), 900_000),
                                  AllocateLine("o-1", 1, 3, backorder=True),
                                  TransferStock("north", "south", 4), ArriveTransfer("t-1"),
                                  CancelBackorder("o-1", 1)])
def test_command_round_trip(body):
    command = Command("cmd-1", "SKU-1", 1700000000000, body, sender="erp")
    codec = command_codec()
    assert command_from_avro(codec.decode(codec.encode(command_to_avro(command)))) == command


@pytest.mark.parametrize("body", [Reserved("r", "o", 2, expires_at=1700000900000),
                                  CommandRejected("Release", RejectReason.UNKNOWN_RESERVATION, "no"),
                                  CommandRejected("AdjustStock", RejectReason.SPACE_NOT_HELD, "no hold"),
                                  Expired("r", "o", 2), LowStockThresholdSet(4),
                                  Allocated("o", 1, 5, "priority", {"north": 3, "south": 4, "east": 0},
                                            (AllocationPart("north", 3, "o:1:north"),
                                             AllocationPart("south", 2, "o:1:south"))),
                                  Allocated("o", 1, 5, "most_stock"),
                                  AllocationRejected("o", 2, 9, RejectReason.INSUFFICIENT_STOCK, "7 available",
                                                     "most_stock", {"north": 3, "south": 4}),
                                  TransferredOut("t-1", "south", 4), TransferArrived("t-1", "north", 4),
                                  Backordered("o", 1, 5, 2), Backordered("o", 1, 5, 1, "north", "most_stock",
                                                                         ("south", "north"), 900_000),
                                  BackorderCancelled("o", 1, 5)])
def test_event_round_trip(body):
    event = Event("e", "c", "SKU-1", 3, 1700000000000, "w", 5, 2, body, 0, 2, "api", 4, True)
    codec = event_codec()
    assert event_from_avro(codec.decode(codec.encode(event_to_avro(event)))) == event


def _newer_command_schema():
    """StockCommand v2: a new optional field (with a default), as a newer producer would send."""
    raw = copy.deepcopy(load("inventory.commands.StockCommand"))
    raw["fields"].insert(4, {"name": "trace_id", "type": ["null", "string"], "default": None})
    return parse_schema(raw, _write_hint=False)


def test_a_reader_with_the_old_schema_reads_a_record_written_with_the_new_one():
    newer = _newer_command_schema()
    writer = AvroCodec(newer)
    record = command_to_avro(Command("c", "SKU-1", 1, Reserve("r", "o", "w", 1)))
    data = writer.encode({**record, "trace_id": "t-1"})

    old_reader = AvroCodec(load("inventory.commands.StockCommand"), known_writers=(newer,))
    decoded = old_reader.decode(data)
    assert "trace_id" not in decoded
    assert command_from_avro(decoded) == command_from_avro(record)


def test_an_unknown_writer_schema_is_a_clear_error():
    data = AvroCodec(_newer_command_schema()).encode(
        {**command_to_avro(Command("c", "S", 1, Reserve("r", "o", "w", 1))), "trace_id": None})
    with pytest.raises(UnknownSchemaError):
        command_codec().decode(data)


@pytest.mark.parametrize("garbage", [b"", b"{\"sku\": \"A\"}", b"\xc3\x01" + b"\x00" * 8,
                                     b"\xc3\x01" + b"\xff" * 30])
def test_garbage_raises_schema_error(garbage):
    with pytest.raises(SchemaError):
        command_codec().decode(garbage)


def test_truncated_record_raises_schema_error():
    data = command_codec().encode(command_to_avro(Command("c", "S", 1, Reserve("r", "o", "w", 1))))
    with pytest.raises(SchemaError):
        command_codec().decode(data[:-3])


@pytest.mark.parametrize("name, to_avro, from_avro, record", [
    (COMMAND_SCHEMA, command_to_avro, command_from_avro, Command("c", "SKU-1", 1, Reserve("r", "o", "w", 2))),
    # A receipt of an older producer has no hold: it decodes as one without (and is refused).
    (COMMAND_SCHEMA, command_to_avro, command_from_avro, Command("c", "SKU-1", 1, AdjustStock("w", 2, "in"))),
    (EVENT_SCHEMA, event_to_avro, event_from_avro,
     Event("e", "c", "SKU-1", 1, 1, "w", 5, 2, Reserved("r", "o", 2))),
])
def test_records_of_every_released_schema_version_still_decode(name, to_avro, from_avro, record):
    released = released_writers(name)
    assert released, f"no released version of {name} in schemas/released/"
    current = AvroCodec(load(name), released)
    for writer_schema in released:
        old = AvroCodec(parse_schema(writer_schema, _write_hint=False))
        assert from_avro(current.decode(old.encode(to_avro(record)))) == record


def _union_members(schema) -> list[str]:
    body = next(f for f in schema["fields"] if f["name"] == "body")
    return [t if isinstance(t, str) else t["name"] for t in body["type"]]


@pytest.mark.parametrize("name", [COMMAND_SCHEMA, EVENT_SCHEMA])
def test_body_unions_only_grow_at_the_end(name):
    """A body's union index is on the wire: a new body type goes last, or an older reader (and a
    record an older producer wrote) would read one type as another."""
    current = _union_members(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))
    for released in released_writers(name):  # canonical forms: full names
        older = _union_members(released)
        assert current[:len(older)] == older


_NEWEST_BODIES = {"inventory.commands.TransferStock": TransferStock("north", "south", 2),
                  "inventory.commands.ArriveTransfer": ArriveTransfer("t-1"),
                  "inventory.commands.CancelBackorder": CancelBackorder("o-1", 2),
                  "inventory.commands.AnnounceIncoming": AnnounceIncoming("north", 5, 1_800_000_000_000)}


def test_a_body_newer_than_a_released_reader_is_refused_by_it_but_the_rest_is_still_read():
    """New body types are the only records an older reader cannot take (consumers are upgraded
    before anyone sends them)."""
    newest_released = max(released_writers(COMMAND_SCHEMA), key=lambda s: len(_union_members(s)))
    added = _union_members(load(COMMAND_SCHEMA))[len(_union_members(newest_released)):]
    old_reader = AvroCodec(parse_schema(newest_released, _write_hint=False), (load(COMMAND_SCHEMA),))
    reserve = command_to_avro(Command("c", "SKU-1", 1, Reserve("r", "o", "w", 2)))
    assert command_from_avro(old_reader.decode(command_codec().encode(reserve))) == command_from_avro(reserve)
    for name in added:  # none when no body type came since the last release
        newer = command_to_avro(Command("c", "SKU-1", 1, _NEWEST_BODIES[name]))
        with pytest.raises(SchemaError):
            old_reader.decode(command_codec().encode(newer))


@pytest.mark.parametrize("body", [CreateWarehouse("North", "Leeds", 500), ReceiveStock("SKU-1", 4, "delivery"),
                                  ConfirmSpace("h"), ReleaseSpace("h"), FreeSpace("SKU-1", 3)])
def test_warehouse_command_round_trip(body):
    command = WarehouseCommand("cmd-1", "north", 1700000000000, body, sender="stock-agent")
    codec = warehouse_command_codec()
    assert warehouse_command_from_avro(codec.decode(codec.encode(warehouse_command_to_avro(command)))) == command


@pytest.mark.parametrize("facts", [
    {"kind": EventKind.WAREHOUSE_CREATED, "name": "North", "location": "Leeds"},
    {"kind": EventKind.SPACE_HELD, "hold_id": "h", "sku": "SKU-1", "quantity": 4, "receipt_reason": "delivery"},
    {"kind": EventKind.REFUSED, "reason": Refusal.CAPACITY_EXCEEDED, "detail": "2 free", "quantity": 4},
])
def test_warehouse_event_round_trip(facts):
    event = WarehouseEvent("e", "c", "north", 3, 1700000000000, stored=5, held=4, capacity=10,
                           sender="api", **facts)
    codec = warehouse_event_codec()
    assert warehouse_event_from_avro(codec.decode(codec.encode(warehouse_event_to_avro(event)))) == event


def test_a_low_stock_alert_round_trips():
    alert = {"event_id": "e", "sku": "SKU-1", "warehouse": "w", "available": 3, "threshold": 5,
             "occurred_at": 1700000000000}
    assert alert_codec().decode(alert_codec().encode(alert)) == alert


# ------------------------------------------------------------------------------- bundles
def test_a_bundle_round_trips_with_its_components():
    command = Command("c", "SET-1", 1, CreateProduct("Gift set", components={"A": 1, "B": 2}), "api")
    assert command_from_avro(command_codec().decode(command_codec().encode(command_to_avro(command)))) == command
    for body in (ProductCreated("Gift set", components={"A": 1, "B": 2}),
                 CommandRejected("Reserve", RejectReason.BUNDLE_HOLDS_NO_STOCK, "a bundle")):
        event = Event("e", "c", "SET-1", 1, 1, "", 0, 0, body)
        assert event_from_avro(event_codec().decode(event_codec().encode(event_to_avro(event)))) == event


def test_products_written_before_bundles_decode_with_no_components():
    command = Command("c", "SKU-1", 1, CreateProduct("Shirt"))
    event = Event("e", "c", "SKU-1", 1, 1, "", 0, 0, ProductCreated("Shirt"))
    for name, record, to_avro, from_avro in ((COMMAND_SCHEMA, command, command_to_avro, command_from_avro),
                                             (EVENT_SCHEMA, event, event_to_avro, event_from_avro)):
        current = AvroCodec(load(name), released_writers(name))
        for writer_schema in released_writers(name):
            data = AvroCodec(parse_schema(writer_schema, _write_hint=False)).encode(to_avro(record))
            decoded = from_avro(current.decode(data))
            assert decoded == record and decoded.body.components == {}


def _before_bundles(schema):
    """The event schema as a consumer deployed before bundles has it (its own .avsc, with the
    enum's default, which a released canonical form drops): no components, no new reason."""
    if isinstance(schema, list):
        return [_before_bundles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _before_bundles(v) for k, v in schema.items()}
    if out.get("type") == "enum" and out.get("name", "").endswith("RejectReason"):
        out["symbols"] = [s for s in out["symbols"] if s != "BUNDLE_HOLDS_NO_STOCK"]
    if out.get("type") == "record":
        out["fields"] = [f for f in out["fields"] if f["name"] != "components"]
    return out


def test_a_consumer_deployed_before_bundles_reads_a_bundle_as_a_product_and_its_refusal_as_other():
    old_reader = AvroCodec(parse_schema(_before_bundles(copy.deepcopy(load(EVENT_SCHEMA))), _write_hint=False),
                           (load(EVENT_SCHEMA),))
    created = Event("e", "c", "SET-1", 1, 1, "", 0, 0, ProductCreated("Gift set", components={"A": 1}))
    assert event_from_avro(old_reader.decode(event_codec().encode(event_to_avro(created)))).body == \
        ProductCreated("Gift set")
    refused = Event("e", "c", "SET-1", 1, 1, "", 0, 0,
                    CommandRejected("Reserve", RejectReason.BUNDLE_HOLDS_NO_STOCK, "a bundle"))
    decoded = old_reader.decode(event_codec().encode(event_to_avro(refused)))
    assert decoded["body"][1]["reason"] == "OTHER"


def test_a_valid_record_with_bytes_after_it_is_refused():
    codec = command_codec()
    encoded = codec.encode(command_to_avro(Command("c-1", "SKU-1", 1, Tick())))
    assert codec.decode(encoded)["command_id"] == "c-1"
    with pytest.raises(SchemaError, match="bytes after"):
        codec.decode(encoded + b"\x00junk")


# ---------------------------------------------------------------------------- unit costs
@pytest.mark.parametrize("cost", [None, Decimal("0"), Decimal("12.5"), Decimal("0.0001"), Decimal("1234.5678"),
                                  Decimal("99999999999999.9999")])
def test_a_unit_cost_round_trips_as_a_decimal(cost):
    command = Command("c", "SKU-1", 1, CreateProduct("Shirt", unit_cost=cost), "api")
    decoded = command_from_avro(command_codec().decode(command_codec().encode(command_to_avro(command))))
    assert decoded == command and decoded.body.unit_cost == cost
    event = Event("e", "c", "SKU-1", 1, 1, "", 0, 0, ProductCreated("Shirt", unit_cost=cost))
    body = event_from_avro(event_codec().decode(event_codec().encode(event_to_avro(event)))).body
    assert body == event.body
    assert body.unit_cost is None if cost is None else (type(body.unit_cost), str(body.unit_cost)) == \
        (Decimal, f"{cost:.4f}")


def test_more_than_4_decimal_places_do_not_fit_the_schema():
    command = Command("c", "SKU-1", 1, CreateProduct("Shirt", unit_cost=Decimal("1.23456")))
    with pytest.raises(SchemaError):
        command_codec().encode(command_to_avro(command))


def test_products_written_before_costs_decode_with_none():
    command = Command("c", "SKU-1", 1, CreateProduct("Shirt"))
    event = Event("e", "c", "SKU-1", 1, 1, "", 0, 0, ProductCreated("Shirt"))
    for name, record, to_avro, from_avro in ((COMMAND_SCHEMA, command, command_to_avro, command_from_avro),
                                             (EVENT_SCHEMA, event, event_to_avro, event_from_avro)):
        current = AvroCodec(load(name), released_writers(name))
        for writer_schema in released_writers(name):
            old = {**to_avro(record), "body": (to_avro(record)["body"][0],
                                               {k: v for k, v in to_avro(record)["body"][1].items() if k != "unit_cost"})}
            data = AvroCodec(parse_schema(writer_schema, _write_hint=False)).encode(old)
            assert from_avro(current.decode(data)).body.unit_cost is None


def test_a_release_of_the_current_schema_keeps_the_cost_a_decimal():
    """fastavro applies the writer's logical types, which the bare canonical form drops:
    ``released_form`` keeps them, and a codec keeps its own schema for its own fingerprint."""
    event = Event("e", "c", "SKU-1", 1, 1, "", 0, 0, ProductCreated("Shirt", unit_cost=Decimal("3.25")))
    released = json.loads(released_form(EVENT_SCHEMA))
    assert schema_fingerprint(released) == schema_fingerprint(load(EVENT_SCHEMA))
    later_reader = AvroCodec(parse_schema(_newer_event_schema(), _write_hint=False), (released,))
    decoded = event_from_avro(later_reader.decode(event_codec().encode(event_to_avro(event))))
    assert decoded.body.unit_cost == Decimal("3.25")

    bare = json.loads(to_parsing_canonical_form(load(EVENT_SCHEMA)))
    assert "logicalType" not in json.dumps(bare)
    codec = AvroCodec(load(EVENT_SCHEMA), (bare,))  # a bare copy under the same fingerprint
    assert event_from_avro(codec.decode(codec.encode(event_to_avro(event)))).body.unit_cost == Decimal("3.25")


def _newer_event_schema():
    raw = copy.deepcopy(load(EVENT_SCHEMA))
    raw["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
    return raw


def test_a_released_form_without_logical_types_is_the_canonical_form():
    for name in ("inventory.orders.OrderCommand", "inventory.warehouses.WarehouseEvent"):
        assert released_form(name) == json.dumps(json.loads(to_parsing_canonical_form(load(name))), indent=1) + "\n"
