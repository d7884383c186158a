"""The warehouse read model's pure parts: the sink's rows and announcements, the ledger worker's
decoding by topic, and the warehouse invariants' checks. PostgreSQL itself is exercised by the
integration tests."""
from __future__ import annotations

import json
from types import SimpleNamespace

from sqlalchemy.dialects import postgresql

from chaos.invariants import warehouse_checks, warehouse_table_view
from schemas import warehouse_event_codec
from storage import sink
from storage.sink import duplicate_flags, warehouse_notification
from streams.ledger.worker import LedgerWorker, _decoders
from streams.topics import STOCK_EVENTS, WAREHOUSE_EVENTS
from streams.warehouses.records import (
    EventKind,
    Refusal,
    WarehouseEvent,
    warehouse_event_id,
    warehouse_event_to_avro,
)


def event(seq: int, kind: EventKind, stored: int = 0, held: int = 0, *, wid: str = "w1",
          capacity: int = 100, at: int | None = None, **facts) -> WarehouseEvent:
    command_id = f"{wid}-{kind}-{seq}-{facts.get('hold_id', '')}"
    return WarehouseEvent(warehouse_event_id(command_id), command_id, wid, seq,
                          1_700_000_000_000 + (seq if at is None else at), kind, stored, held,
                          capacity, "test", **facts)


CREATED = event(1, EventKind.WAREHOUSE_CREATED, name="North", location="Oslo")
HELD = event(2, EventKind.SPACE_HELD, held=30, hold_id="h1", sku="A", quantity=30, receipt_reason="po")
CONFIRMED = event(3, EventKind.SPACE_CONFIRMED, stored=30, hold_id="h1", quantity=30)
REFUSED = event(3, EventKind.REFUSED, stored=30, hold_id="h2", sku="B", quantity=90,
                reason=Refusal.CAPACITY_EXCEEDED, detail="70 units of space free")


# ------------------------------------------------------------------------------ announcements
def test_a_warehouse_event_is_announced_flat_with_its_source_type_and_free_space():
    data = warehouse_notification(HELD, duplicate=False)
    assert set(data) == set(warehouse_event_to_avro(HELD)) | {"source", "type", "free", "duplicate"}
    assert (data["source"], data["type"], data["free"], data["duplicate"]) == ("warehouse", "SpaceHeld", 70, False)
    assert data["command_id"] == HELD.command_id and data["hold_id"] == "h1"
    json.dumps(data)  # it travels as a NOTIFY payload


def test_a_refusal_is_announced_with_its_reason_as_a_string():
    data = warehouse_notification(REFUSED, duplicate=True)
    assert (data["type"], data["reason"], data["duplicate"]) == ("Refused", "CAPACITY_EXCEEDED", True)
    assert data["detail"] == "70 units of space free"


def test_an_event_is_fresh_only_when_new_to_the_ledger_and_first_in_the_batch():
    assert duplicate_flags(["a", "b", "a", "c"], new_ids={"a", "b"}) == [False, False, True, True]


# --------------------------------------------------------------------------------------- rows
def test_a_ledger_row_keeps_empty_facts_as_nulls():
    row = sink._warehouse_event_row(CONFIRMED)
    assert (row["kind"], row["sku"], row["hold_id"], row["reason"], row["detail"]) == \
        ("SpaceConfirmed", None, "h1", None, None)
    assert (row["stored_after"], row["held_after"], row["capacity"], row["quantity"]) == (30, 0, 100, 30)
    assert row["payload"] == warehouse_event_to_avro(CONFIRMED)
    refused = sink._warehouse_event_row(REFUSED)
    assert (refused["reason"], refused["sku"]) == ("CAPACITY_EXCEEDED", "B")


def test_one_row_per_warehouse_its_latest_ledger_named_and_dated_by_its_creation():
    other = event(5, EventKind.SPACE_FREED, stored=4, wid="w2", sku="C", quantity=1)
    rows = {r["warehouse_id"]: r for r in sink._warehouse_rows([CONFIRMED, CREATED, REFUSED, HELD, other])}
    assert set(rows) == {"w1", "w2"}
    w1 = rows["w1"]
    assert (w1["stored"], w1["held"], w1["version"], w1["capacity"]) == (30, 0, 3, 100)
    assert (w1["name"], w1["location"]) == ("North", "Oslo")
    assert w1["created_at"] == sink._ts(CREATED.occurred_at)
    assert w1["updated_at"] == sink._ts(CONFIRMED.occurred_at)
    assert (rows["w2"]["stored"], rows["w2"]["version"]) == (4, 5)


def test_refusals_move_no_warehouse():
    assert sink._warehouse_rows([REFUSED]) == []


def test_the_upsert_only_moves_a_warehouse_forward_and_keeps_its_name_and_creation():
    sql = str(sink._UPSERT_WAREHOUSES.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (warehouse_id) DO UPDATE" in sql
    assert sql.endswith("WHERE warehouses.version < excluded.version")
    updated = sql.split("DO UPDATE SET", 1)[1]
    assert "name =" not in updated and "location =" not in updated and "created_at =" not in updated


# ------------------------------------------------------------------------------ ledger worker
def _worker() -> LedgerWorker:
    worker = LedgerWorker.__new__(LedgerWorker)  # no consumer or producer: decoding only
    worker._decoders = _decoders()
    return worker


def test_the_ledger_worker_decodes_each_record_with_its_topics_codec():
    value = warehouse_event_codec().encode(warehouse_event_to_avro(HELD))
    records = [SimpleNamespace(topic=WAREHOUSE_EVENTS, value=value),
               SimpleNamespace(topic=STOCK_EVENTS, value=value)]  # a warehouse event where stock goes
    events, malformed = _worker()._decode(records)
    assert events == [HELD]
    assert [r.topic for r, _ in malformed] == [STOCK_EVENTS]


def test_an_undecodable_warehouse_record_is_set_aside():
    events, malformed = _worker()._decode([SimpleNamespace(topic=WAREHOUSE_EVENTS, value=b"junk")])
    assert events == [] and malformed[0][1].startswith("SchemaError")


# --------------------------------------------------------------------------------- invariants
def _pg(stored: int, held: int = 0, version: int = 3, on_hand: int | None = None, capacity: int = 100):
    return {"capacity": capacity, "stored": stored, "held": held, "version": version,
            "on_hand": stored if on_hand is None else on_hand}


def test_the_warehouse_table_view_skips_warehouses_that_do_not_exist():
    table = {"s:w1": {"capacity": 100, "stored": 30, "holds": {"h": 5, "i": 2}, "seq": 4},
             "s:nowhere": {"capacity": -1, "stored": 0, "holds": {}, "seq": 0},
             "c:w1:x": {"n": 1, "events": []}, "k:w1:1": "x"}
    assert warehouse_table_view(table) == {"w1": (30, 7, 4)}


def test_settled_warehouses_equal_to_the_table_have_no_violations():
    assert warehouse_checks({"w1": _pg(30)}, {"w1": (30, 0, 3)}) == []


def test_held_space_missing_units_overflow_and_drift_are_reported():
    found = warehouse_checks({"w1": _pg(30, held=5, on_hand=25), "w2": _pg(90, held=20, version=2)},
                             {"w1": (30, 5, 3), "w3": (1, 0, 1)})
    assert any("w1" in f and "still held" in f for f in found)
    assert any("w1" in f and "its SKUs hold 25" in f for f in found)
    assert any("w2" in f and "over capacity" in f for f in found)
    assert any("differ" in f and "'w2'" in f and "'w3'" in f and "'w1'" not in f for f in found)
