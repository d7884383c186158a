"""Dead letters without the servers: every kind of bad record on every input topic is set aside
with its reason and source, the valid ones around it are decided, and a decision that fails
leaves nothing of itself in the batch (streams/partition/agent.py, streams/ledger/worker.py)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import asyncpg.exceptions
import pytest
from aiokafka import TopicPartition
from asyncpg.exceptions._base import DataError as ArgumentError
from sqlalchemy.exc import DBAPIError

from schemas import command_codec, event_codec, order_command_codec, warehouse_command_codec
from streams.ledger.worker import LedgerWorker, event_contract_violation, refused_by_postgres
from streams.orders.agents import decide_order_batch
from streams.orders.records import OrderCommand, OrderLine, PlaceOrder, order_command_to_avro
from streams.partition.agent import PoisonRecord, contract_violation, decide_records, decide_without_poison
from streams.partition.batch import TableBatch
from streams.stock.agents import decide_batch
from streams.stock.records import (
    AnnounceIncoming,
    Command,
    CreateProduct,
    Event,
    ProductCreated,
    command_to_avro,
    event_to_avro,
)
from streams.stock.store import StockStore
from streams.topics import (
    ORDER_COMMANDS,
    ORDER_COMMANDS_DLQ,
    STOCK_COMMANDS,
    STOCK_COMMANDS_DLQ,
    STOCK_EVENTS,
    WAREHOUSE_COMMANDS,
    WAREHOUSE_COMMANDS_DLQ,
)
from streams.warehouses.agents import decide_warehouse_batch
from streams.warehouses.records import CreateWarehouse, WarehouseCommand, warehouse_command_to_avro


def _record(topic: str, offset: int, key: bytes | None, value: bytes | None) -> SimpleNamespace:
    """What the agents read of a faust event."""
    return SimpleNamespace(key=key, value=value,
                           message=SimpleNamespace(topic=topic, partition=0, offset=offset))


def _stock(command_id: str, sku: str, body) -> bytes:
    return command_codec().encode(command_to_avro(Command(command_id, sku, 1, body)))


def _warehouse(command_id: str, warehouse: str) -> bytes:
    return warehouse_command_codec().encode(warehouse_command_to_avro(
        WarehouseCommand(command_id, warehouse, 1, CreateWarehouse("w", "here", 10))))


def _order(command_id: str, order: str) -> bytes:
    return order_command_codec().encode(order_command_to_avro(
        OrderCommand(command_id, order, 1, PlaceOrder("c", (OrderLine("SKU-1", 1),)))))


def _stock_event(sku: str = "S", event_id: str = "e-1") -> Event:
    return Event(event_id, "c-1", sku, 1, 1, "", 0, 0, ProductCreated(name="p"))


# An Avro single-object header naming a schema nobody knows, and a body.
UNKNOWN_SCHEMA = b"\xc3\x01" + bytes(range(8)) + b"\x02ab"

# Per command topic: its decider, DLQ, a valid command's encoding for (id, key), and a record of
# another area's schema, well formed.
AREAS = {
    STOCK_COMMANDS: (decide_batch, STOCK_COMMANDS_DLQ,
                     lambda cid, key: _stock(cid, key, CreateProduct(name="p")), _order("o-1", "K")),
    WAREHOUSE_COMMANDS: (decide_warehouse_batch, WAREHOUSE_COMMANDS_DLQ, _warehouse,
                         _stock("s-1", "K", CreateProduct(name="p"))),
    ORDER_COMMANDS: (decide_order_batch, ORDER_COMMANDS_DLQ, _order,
                     event_codec().encode(event_to_avro(_stock_event("K")))),
}


def test_a_command_breaks_its_topics_contract_when_its_key_or_ids_are_not_right():
    assert contract_violation(b"K", "c-1", "K", "SKU") is None
    assert "command id is empty" in contract_violation(b"K", "", "K", "SKU")
    assert "SKU is empty" in contract_violation(b"", "c-1", "", "SKU")
    assert "is not the command's SKU 'K'" in contract_violation(b"L", "c-1", "K", "SKU")
    assert "is not the command's SKU 'K'" in contract_violation(None, "c-1", "K", "SKU")


@pytest.mark.parametrize("topic", list(AREAS))
def test_bad_records_between_valid_ones_are_dead_lettered_with_reason_and_source(topic):
    decide, dlq, valid, other_area = AREAS[topic]
    records = [
        _record(topic, 10, b"K1", valid("c-1", "K1")),
        _record(topic, 11, b"K1", b"garbage"),                 # not Avro
        _record(topic, 12, b"K1", None),                       # a tombstone
        _record(topic, 13, b"K1", b""),                        # empty bytes
        _record(topic, 14, b"K1", other_area),                 # another area's schema
        _record(topic, 15, b"K1", UNKNOWN_SCHEMA),             # an unknown writer schema
        _record(topic, 16, b"K1", valid("c-2", "K2")),         # key is not the command's id
        _record(topic, 17, b"K1", valid("", "K1")),            # empty command id
        _record(topic, 18, b"", valid("c-3", "")),             # empty entity id
        _record(topic, 19, None, valid("c-4", "K1")),          # no key
        _record(topic, 20, b"K3", valid("c-5", "K3")),
    ]
    decided = decide(TableBatch({}), records)

    dead = [(key, value, dict(headers)) for t, key, value, headers in decided.outputs if t == dlq]
    assert [d[2]["source"] for d in dead] == [f"{topic}/0/{o}".encode() for o in range(11, 20)]
    assert [d[1] for d in dead] == [r.value for r in records[1:10]]  # the record as it came
    errors = [d[2]["error"].decode() for d in dead]
    assert all(e.startswith("SchemaError") for e in errors[:3]), errors
    assert all(e.startswith("UnknownSchemaError") for e in errors[3:5]), errors
    assert "is not the command's" in errors[5] and "command id is empty" in errors[6], errors
    assert "is empty" in errors[7] and "None is not the command's" in errors[8], errors
    decided_keys = {key for t, key, _, _ in decided.outputs if t != dlq and key in (b"K1", b"K3")}
    assert decided_keys == {b"K1", b"K3"}  # both valid commands were decided


def _announce_events(decided) -> list[bytes]:
    return [value for topic, _, value, _ in decided.outputs if topic == "stock-events"]


def test_a_decision_whose_outputs_fail_leaves_nothing_in_the_batch_and_is_dead_lettered():
    # Incoming units past Avro's long: the decision is made, its event cannot be encoded. Before,
    # the batch raised and the worker stopped (exit 70), then did the same again on restart.
    records = [_record(STOCK_COMMANDS, i, b"S", _stock(f"c-{i}", "S", body)) for i, body in enumerate([
        CreateProduct(name="p"), AnnounceIncoming("default", 1, 5),
        AnnounceIncoming("default", 2**63 - 1, 5), AnnounceIncoming("default", 2, 5)])]
    with pytest.raises(PoisonRecord):
        decide_batch(TableBatch({}), records)

    batch, decided = decide_without_poison({}, records, decide_batch)
    dead = [(value, dict(headers)) for t, _, value, headers in decided.outputs if t == STOCK_COMMANDS_DLQ]
    assert len(dead) == 1 and dead[0][0] == records[2].value
    assert dead[0][1]["error"].startswith(b"OverflowError") and dead[0][1]["source"] == b"stock-commands/0/2"
    assert len(_announce_events(decided)) == 3
    level = StockStore(batch).sku("S").levels["default"]
    assert level.incoming == 3  # the poisoned announcement is not in the table


def test_a_failing_handler_is_rolled_back_and_the_rest_of_the_batch_is_decided():
    def handle(command) -> list[str]:
        table[command.command_id] = "written"
        if command.command_id == "boom":
            raise RuntimeError("a bug")
        return [command.command_id]

    def decide(batch, events):
        nonlocal table
        table = batch
        return decide_records(events, lambda key, value: SimpleNamespace(command_id=value.decode(), issued_at=0),
                              handle, lambda decided, command, facts: decided.send("out", None, facts[0].encode()),
                              "dlq")

    table = None
    records = [_record("in", i, b"k", v) for i, v in enumerate([b"a", b"boom", b"b"])]
    batch, decided = decide_without_poison({}, records, decide)
    assert [(t, v) for t, _, v, _ in decided.outputs] == [("out", b"a"), ("out", b"b"), ("dlq", b"boom")]
    assert dict(decided.outputs[2][3])["error"] == b"RuntimeError: a bug"
    assert "boom" not in batch and batch["a"] == batch["b"] == "written"


def test_a_poison_record_of_another_batch_is_not_swallowed():
    def decide(batch, events):
        raise PoisonRecord(object(), "dlq", "elsewhere")

    with pytest.raises(PoisonRecord):
        decide_without_poison({}, [_record("in", 0, b"k", b"v")], decide)


# ------------------------------------------------------------------------------ ledger worker
def test_an_event_breaks_its_topics_contract_when_its_key_is_not_its_entity():
    assert event_contract_violation(b"S", _stock_event()) is None
    assert "is not the event's 'S'" in event_contract_violation(b"T", _stock_event())
    assert "is not the event's 'S'" in event_contract_violation(None, _stock_event())
    assert "event id is empty" in event_contract_violation(b"S", _stock_event(event_id=""))


def _wrapped(error: Exception) -> DBAPIError:
    """How SQLAlchemy hands the driver's error over: wrapped, the driver's as ``orig``'s cause."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return DBAPIError("INSERT ...", {}, adapted)


def test_only_errors_about_the_data_itself_count_as_refused_by_postgresql():
    assert refused_by_postgres(_wrapped(asyncpg.exceptions.CheckViolationError("levels_never_oversold")))
    assert refused_by_postgres(_wrapped(asyncpg.exceptions.NumericValueOutOfRangeError("out of range")))
    assert refused_by_postgres(_wrapped(ArgumentError("invalid input for query argument $1")))
    assert not refused_by_postgres(_wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")))
    assert not refused_by_postgres(_wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("gone")))
    assert not refused_by_postgres(OSError("connection refused"))


async def test_the_ledger_dead_letters_only_the_event_postgresql_refuses():
    worker = LedgerWorker.__new__(LedgerWorker)  # no consumer, producer nor database
    dead, written = [], []

    async def dead_letter(record, reason):
        dead.append((record, reason))

    async def write(events):
        if any(e.sku == "BAD" for e in events):
            raise _wrapped(asyncpg.exceptions.CheckViolationError("levels_never_oversold"))
        written.extend(events)

    worker._dead_letter = dead_letter
    pairs = [(f"r{i}", _stock_event(sku, f"e-{i}")) for i, sku in enumerate(["A", "BAD", "B"])]
    await worker._persist(pairs, Event, write)
    assert [e.sku for e in written] == ["A", "B"]
    assert [(r, reason.split(":")[0]) for r, reason in dead] == [("r1", "DBAPIError")]


async def test_the_ledger_stops_on_a_database_error_that_is_not_the_records():
    worker = LedgerWorker.__new__(LedgerWorker)

    async def write(events):
        raise _wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock"))

    worker._dead_letter = None  # never called
    with pytest.raises(DBAPIError):
        await worker._persist([("r0", _stock_event())], Event, write)


async def test_an_idle_ledger_still_commits_the_offsets_of_its_last_batch():
    # Else a bad record at the end of quiet traffic kept the group's offset before it until the
    # next event arrived, and a restart read it again.
    commits = []

    class Consumer:
        async def getmany(self, timeout_ms, max_records):
            return {}

        async def commit(self, offsets):
            commits.append(offsets)

    worker = LedgerWorker.__new__(LedgerWorker)
    worker.settings = SimpleNamespace(sink_batch_size=10, sink_batch_seconds=0.01, commit_interval_s=0.5)
    worker.consumer = Consumer()
    tp = TopicPartition(STOCK_EVENTS, 0)
    worker._pending, worker._committed_at = {tp: 8}, time.monotonic() - 3600  # committed long ago
    assert await worker.step() == 0
    assert commits == [{tp: 8}]
