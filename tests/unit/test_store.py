"""Exactly-once effects of the table layout: duplicates, crashes between writes, the window."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock.records import (
    AdjustStock,
    AllocateLine,
    Allocated,
    CancelBackorder,
    Command,
    Commit,
    CLOCK_KEY,
    CreateProduct,
    Expired,
    Level,
    ReservationState,
    Release,
    Reserve,
    Reserved,
    Tick,
)
from streams.partition.batch import DELETED, TableBatch
from streams.stock.store import StockStore

SKU = "SKU-1"


class RecordingTable(dict):
    """A dict that logs every write in order, as the changelog partition would hold them."""

    def __init__(self, *args):
        super().__init__(*args)
        self.log: list[tuple[str, object]] = []

    def __setitem__(self, key, value):
        self.log.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.log.append((key, None))
        super().__delitem__(key)

    def pop(self, key, *default):
        if key in self:
            self.log.append((key, None))
        return super().pop(key, *default)


def replay(base: dict, writes: list[tuple[str, object]]) -> RecordingTable:
    """The table a worker recovers from a changelog holding ``base`` and then ``writes``."""
    table = RecordingTable(base)
    for key, value in writes:
        if value is None:
            dict.pop(table, key, None)
        else:
            dict.__setitem__(table, key, value)
    return table


def cmd(command_id: str, body) -> Command:
    return Command(command_id, SKU, 1, body)


def setup(store: StockStore, units: int = 10) -> None:
    store.handle(cmd("create", CreateProduct("Shirt")))
    store.handle(cmd("receive", AdjustStock("w", units, "received", hold_id="receive")))


def test_same_command_twice_applies_once_and_answers_the_same():
    store = StockStore(RecordingTable())
    setup(store)
    first = store.handle(cmd("r1", Reserve("res", "o", "w", 3)))
    again = store.handle(cmd("r1", Reserve("res", "o", "w", 3)))
    assert first == again
    assert store.sku(SKU).level("w") == Level(10, 3)


def test_a_retry_is_answered_even_after_later_commands():
    store = StockStore(RecordingTable())
    setup(store)
    first = store.handle(cmd("r1", Reserve("res", "o", "w", 3)))
    store.handle(cmd("c1", Commit("res")))
    assert store.handle(cmd("r1", Reserve("res", "o", "w", 3))) == first
    assert store.sku(SKU).level("w") == Level(7, 0)
    assert store.reservation(SKU, "res").state is ReservationState.COMMITTED


def test_a_rejection_before_the_product_exists_is_remembered_after_it_is_created():
    """Once the SKU exists, a redelivery (or retry) of the early command gets its first answer
    and changes nothing; it used to be decided again, and applied."""
    table = RecordingTable()
    store = StockStore(table)
    early = cmd("early", AdjustStock("w", 5, "received", hold_id="early"))
    [rejected] = store.handle(early)
    assert rejected.is_rejection and str(rejected.body.reason) == "UNKNOWN_PRODUCT"

    store.handle(cmd("create", CreateProduct("Widget")))
    assert store.handle(early) == [rejected]
    assert store.sku(SKU).levels.get("w", Level(0, 0)) == Level(0, 0)
    # A retry stamped later is still the same command: the same answer.
    assert store.handle(Command("early", SKU, 99, early.body)) == [rejected]


def test_the_window_forgets_old_commands_and_their_ended_reservations():
    table = RecordingTable()
    store = StockStore(table, window=4)
    setup(store)
    store.handle(cmd("r", Reserve("res", "o", "w", 1)))
    store.handle(cmd("x", Release("res")))
    for i in range(6):
        store.handle(cmd(f"n{i}", AdjustStock("w", 1, "received", hold_id=f"n{i}")))
    command_keys = [k for k in table if k.startswith("c:")]
    assert len(command_keys) == 4, command_keys
    assert f"r:{SKU}:res" not in table, "an ended reservation is dropped with the command that ended it"
    assert store.sku(SKU).level("w") == Level(16, 0)


# "o1:0:w" and "o1:0:v" are the parts of an order line's allocation (AllocateLine "o1", line 0).
reservation_ids = st.sampled_from(["a", "b", "c", "o1:0:w", "o1:0:v"])
body_strategy = st.one_of(
    st.builds(lambda wh, q: AdjustStock(wh, q, "adj", "hold" if q > 0 else ""), st.sampled_from(["w", "v"]),
              st.integers(-3, 5)),
    st.builds(Reserve, st.sampled_from(["a", "b", "c"]), st.just("o"), st.just("w"), st.integers(1, 4),
              st.sampled_from([0, 10, 25, 60])),
    st.builds(AllocateLine, st.sampled_from(["o1", "o2"]), st.integers(0, 1), st.integers(1, 14),
              st.sampled_from(["", "v"]), st.sampled_from(["priority", "most_stock"]),
              st.sampled_from([(), ("v", "w")]), st.sampled_from([0, 10, 25]), st.booleans()),
    st.builds(CancelBackorder, st.sampled_from(["o1", "o2"]), st.integers(0, 1)),
    st.builds(Release, reservation_ids),
    st.builds(Commit, reservation_ids),
    st.builds(Tick),
)


def timed(i: int, body, sku: str = SKU) -> Command:
    """The i-th command of a test, 10 ms after the one before; a tick goes to the clock."""
    return Command(f"c{i}", CLOCK_KEY if isinstance(body, Tick) else sku, 10 * i, body)


@settings(max_examples=500, deadline=None)
@given(st.lists(body_strategy, min_size=1, max_size=25), st.data())
def test_a_crash_between_any_two_writes_then_redelivery_equals_no_crash(bodies, data):
    commands = [timed(i, b) for i, b in enumerate(bodies)]
    clean = StockStore(RecordingTable(), window=5)
    setup(clean)
    expected = [clean.handle(c) for c in commands]

    crashed_at = data.draw(st.integers(0, len(commands) - 1), label="crashing command")
    table = RecordingTable()
    store = StockStore(table, window=5)
    setup(store)
    for c in commands[:crashed_at]:
        store.handle(c)
    before = dict(table)
    mark = len(table.log)
    store.handle(commands[crashed_at])
    writes = table.log[mark:]
    kept = data.draw(st.integers(0, len(writes)), label="writes that reached the changelog")

    # The worker dies; its successor recovers the table and gets the command again.
    recovered = StockStore(replay(before, writes[:kept]), window=5)
    outcomes = [recovered.handle(c) for c in commands[crashed_at:]]
    assert outcomes == expected[crashed_at:]
    assert dict(recovered.table) == dict(clean.table)


def setup_two(store: StockStore) -> None:
    setup(store, 4)
    store.handle(cmd("receive-v", AdjustStock("v", 3, "received", hold_id="receive-v")))


def test_a_redelivered_allocation_answers_the_same_events_and_holds_nothing_twice():
    table = RecordingTable()
    store = StockStore(table)
    setup_two(store)
    allocate = Command("allocate:o:0", SKU, 1_000, AllocateLine("o", 0, 6, "v", ttl_ms=50))
    first = store.handle(allocate)
    assert [e.type for e in first] == ["Allocated", "Reserved", "Reserved"]
    assert store.handle(allocate) == first
    assert store.handle(replace(allocate, issued_at=2_000)) == first, "a retry stamped later too"
    assert store.sku(SKU).level("v") == Level(3, 3) and store.sku(SKU).level("w") == Level(4, 3)
    for rid, wh, units in (("o:0:v", "v", 3), ("o:0:w", "w", 3)):
        held = store.reservation(SKU, rid)
        assert (held.warehouse, held.quantity, held.state, held.expires_at) == \
            (wh, units, ReservationState.PENDING, 1_050)
    assert sorted(k for k in table if k.startswith("x:")) == [
        f"x:{1_050:013d}:{SKU}:o:0:v", f"x:{1_050:013d}:{SKU}:o:0:w"], "each part is indexed by its deadline"


def test_every_part_of_an_allocation_expires_at_its_deadline():
    store = StockStore(RecordingTable())
    setup_two(store)
    store.handle(Command("allocate:o:0", SKU, 1_000, AllocateLine("o", 0, 5, ttl_ms=50)))
    expired = tick(store, 1_050)
    assert sorted(e.body.reservation_id for e in expired) == ["o:0:v", "o:0:w"]
    assert store.sku(SKU).level("v") == Level(3, 0) and store.sku(SKU).level("w") == Level(4, 0)


def test_an_allocation_rejected_is_remembered_and_holds_nothing():
    store = StockStore(RecordingTable())
    setup_two(store)
    allocate = cmd("allocate:o:0", AllocateLine("o", 0, 8))
    [rejected] = store.handle(allocate)
    assert rejected.is_rejection and str(rejected.body.reason) == "INSUFFICIENT_STOCK"
    store.handle(cmd("more", AdjustStock("w", 5, "received", hold_id="more")))
    assert store.handle(allocate) == [rejected]
    assert not [k for k in store.table if k.startswith("r:")]


def test_an_allocation_decided_again_once_forgotten_is_refused_not_held_twice():
    """Past the dedup window the same line is decided again: the store loads the reservations
    its parts would hold (one per warehouse), so the line is refused."""
    store = StockStore(RecordingTable(), window=2)
    setup_two(store)
    allocate = cmd("allocate:o:0", AllocateLine("o", 0, 4))
    assert isinstance(store.handle(allocate)[0].body, Allocated)  # v: 3, w: 1
    for i in range(3):
        store.handle(cmd(f"n{i}", AdjustStock("w", 1, "received", hold_id=f"n{i}")))
    assert f"c:{SKU}:allocate:o:0" not in store.table
    [refused] = store.handle(allocate)
    assert str(refused.body.reason) == "RESERVATION_EXISTS"
    assert store.sku(SKU).level("w") == Level(7, 1) and store.sku(SKU).level("v") == Level(3, 3)


def test_reservation_events_carry_the_resulting_level():
    store = StockStore(RecordingTable())
    setup(store, 4)
    [event] = store.handle(cmd("r", Reserve("res", "o", "w", 3)))
    assert isinstance(event.body, Reserved)
    assert (event.on_hand, event.reserved, event.reserved_delta) == (4, 3, 3)


# ------------------------------------------------------------------------ batches (TableBatch)
SKUS = ("SKU-1", "SKU-2")


def setup_skus(store: StockStore) -> None:
    for sku in SKUS:
        store.handle(Command(f"create-{sku}", sku, 1, CreateProduct("Shirt")))
        store.handle(Command(f"receive-{sku}", sku, 1, AdjustStock("w", 6, "received", f"receive-{sku}")))


sku_command_strategy = st.tuples(st.sampled_from(SKUS), body_strategy)


def _commands(pairs) -> list[Command]:
    # Reservation ids are per SKU here, as the API hands them out.
    def scoped(sku, body):
        if isinstance(body, (Reserve, Release, Commit)):
            return replace(body, reservation_id=f"{sku}/{body.reservation_id}")
        if isinstance(body, (AllocateLine, CancelBackorder)):  # its parts' ids start with the order's
            return replace(body, order_id=f"{sku}/{body.order_id}")
        return body
    return [timed(i, scoped(sku, body), sku) for i, (sku, body) in enumerate(pairs)]


@settings(max_examples=400, deadline=None)
@given(st.lists(sku_command_strategy, min_size=1, max_size=30), st.data())
def test_a_crash_inside_a_batch_then_redelivery_equals_no_crash(pairs, data):
    commands = _commands(pairs)
    clean = StockStore(RecordingTable(), window=5)
    setup_skus(clean)
    expected = [clean.handle(c) for c in commands]

    start = data.draw(st.integers(0, len(commands) - 1), label="batch start")
    # A redelivery repeats at most a window's worth of a SKU's commands (streams/partition/batch.py).
    size = data.draw(st.integers(1, min(5, len(commands) - start)), label="batch size")
    table = RecordingTable()
    setup_skus(StockStore(table, window=5))
    for c in commands[:start]:
        StockStore(table, window=5).handle(c)
    batch = TableBatch(table)
    batched = StockStore(batch, window=5)
    assert [batched.handle(c) for c in commands[start:start + size]] == expected[start:start + size]
    writes = batch.writes()
    kept = data.draw(st.integers(0, len(writes)), label="writes that reached the changelog")

    recovered = StockStore(replay(dict(table), [(k, None if v is DELETED else v)
                                                for k, v in writes[:kept]]), window=5)
    outcomes = [recovered.handle(c) for c in commands[start:]]
    assert outcomes == expected[start:]
    assert dict(recovered.table) == dict(clean.table)


def test_a_batch_writes_each_sku_state_once_and_last():
    table = RecordingTable()
    setup_skus(StockStore(table))
    batch = TableBatch(table)
    store = StockStore(batch)
    for i in range(5):
        store.handle(Command(f"r{i}", "SKU-1", 1, Reserve(f"res{i}", "o", "w", 1)))
    writes = batch.writes()
    states = [k for k, _ in writes if k.startswith("s:")]
    assert states == ["s:SKU-1"], states
    assert writes[-1][0] == "s:SKU-1" and writes[-1][1]["levels"]["w"] == [6, 5]
    assert table["s:SKU-1"]["levels"]["w"] == [6, 0], "the batch leaves its base untouched"


# ---------------------------------------------------------------------------------- expiry
def reserve(store: StockStore, rid: str, at: int, ttl_ms: int, sku: str = SKU) -> None:
    [event] = store.handle(Command(f"r-{rid}", sku, at, Reserve(rid, "o", "w", 1, ttl_ms)))
    assert isinstance(event.body, Reserved)


def tick(store: StockStore, at: int) -> list:
    return store.handle(Command(f"tick:0:{at}", CLOCK_KEY, at, Tick()))


def test_a_tick_expires_what_is_due_in_deadline_order_and_nothing_else():
    table = RecordingTable()
    store = StockStore(table)
    setup(store, 5)
    reserve(store, "late", 1_000, 5_000)
    reserve(store, "soon", 1_000, 1_000)
    reserve(store, "never", 1_000, 0)
    assert tick(store, 1_999) == []
    assert store.sku(SKU).level("w") == Level(5, 3)
    expired = tick(store, 6_000)
    assert [e.body.reservation_id for e in expired] == ["soon", "late"]
    assert all(isinstance(e.body, Expired) and e.sender == "clock" for e in expired)
    assert store.sku(SKU).level("w") == Level(5, 1)
    assert store.reservation(SKU, "late").state is ReservationState.EXPIRED
    assert not [k for k in table if k.startswith("x:")], "handled index entries are deleted"
    assert tick(store, 7_000) == []


def test_a_redelivered_tick_answers_the_same_and_a_reservation_ended_first_is_skipped():
    store = StockStore(RecordingTable())
    setup(store, 5)
    reserve(store, "kept", 1_000, 1_000)
    reserve(store, "released", 1_000, 1_000)
    store.handle(cmd("rel", Release("released")))
    first = tick(store, 3_000)
    assert [e.body.reservation_id for e in first] == ["kept"]
    assert tick(store, 3_000) == first, "the same tick again re-announces the same expiries"
    assert store.sku(SKU).level("w") == Level(5, 0)


def test_tick_records_are_dropped_after_an_hour():
    from streams.stock.store import TICK_RECORD_RETENTION_MS
    table = RecordingTable()
    store = StockStore(table)
    tick(store, 1_000)
    tick(store, 1_000 + TICK_RECORD_RETENTION_MS)
    assert [k for k in table if k.startswith("t:")] == [
        f"t:{1_000 + TICK_RECORD_RETENTION_MS:013d}:tick:0:{1_000 + TICK_RECORD_RETENTION_MS}"]


def test_a_tick_over_a_batch_sees_the_batch_and_is_recorded_before_its_expiries():
    table = RecordingTable()
    setup(StockStore(table), 5)
    batch = TableBatch(table)
    store = StockStore(batch)
    reserve(store, "a", 1_000, 10)
    assert [e.body.reservation_id for e in tick(store, 2_000)] == ["a"]
    keys = [k for k, _ in batch.writes()]
    expiry = next(i for i, k in enumerate(keys) if k.startswith(f"c:{SKU}:expire:"))
    assert expiry > next(i for i, k in enumerate(keys) if k.startswith("t:")), \
        "the tick's record goes before the expiries it decides"


def test_a_unit_cost_survives_the_changelogs_json_and_an_older_state_loads_without_one():
    """The table's values travel as JSON (streams/partition/local.py): the cost, in the SKU and
    in the command's record, must too; a SKU written before costs (6 product fields) has none."""
    import json
    from decimal import Decimal

    table = RecordingTable()
    created = StockStore(table).handle(cmd("create", CreateProduct("Shirt", unit_cost=Decimal("12.5"))))
    copied = json.loads(json.dumps(dict(table)))
    store = StockStore(copied)
    assert store.sku(SKU).product.unit_cost == Decimal("12.5000")
    assert store.handle(cmd("create", CreateProduct("Shirt", unit_cost=Decimal("12.5")))) == created
    assert store.handle(cmd("create", CreateProduct("Shirt")))[0].body.unit_cost == Decimal("12.5000")

    copied[f"s:{SKU}"]["product"] = copied[f"s:{SKU}"]["product"][:6]
    assert StockStore(copied).sku(SKU).product.unit_cost is None
    copied[f"s:{SKU}"]["product"] = copied[f"s:{SKU}"]["product"][:5]  # before bundles too
    assert StockStore(copied).sku(SKU).product.components == {}
