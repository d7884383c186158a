"""Exactly-once effects of the orders' table layout: duplicates, the window, crashes."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.orders.records import (
    CancelOrder, FulfilOrder, LineAllocated, LineBackordered, LineRejected, LineState, OrderCommand,
    OrderEventKind, OrderLine, OrderStatus, Part, PlaceOrder,
)
from streams.orders.store import OrderStore

from .crash_batches import check_crash_inside_a_batch

ORDER = "o-1"


def cmd(command_id: str, body, order: str = ORDER, at: int = 1) -> OrderCommand:
    return OrderCommand(command_id, order, at, body, sender="test")


def place(order: str = ORDER, skus: str = "AB") -> OrderCommand:
    return cmd("place", PlaceOrder("alice", tuple(OrderLine(s, 2) for s in skus)), order)


def allocated(line: int, order: str = ORDER) -> OrderCommand:
    return cmd(f"allocated:{order}:{line}", LineAllocated(line, (Part("north", 2, f"{order}:{line}:north"),)),
               order)


def placed(table: dict, window: int = 10_000) -> OrderStore:
    store = OrderStore(table, window=window)
    store.handle(place())
    return store


def test_a_redelivered_command_gets_the_same_events_and_changes_nothing_twice():
    store = placed({})
    first = store.handle(allocated(1))
    assert store.handle(allocated(1)) == first
    both = store.handle(allocated(2))
    assert [e.kind for e in both] == [OrderEventKind.LINE_ALLOCATED, OrderEventKind.ORDER_RESERVED]
    # Later, and re-stamped: still the same command, with the same events (not a refusal).
    assert store.handle(cmd(f"allocated:{ORDER}:2", LineAllocated(2, ()), at=99)) == both
    assert store.handle(place())[0].kind is OrderEventKind.ORDER_PLACED
    order = store.order(ORDER)
    assert (order.status, order.seq) == (OrderStatus.RESERVED, 4)
    assert [line.state for line in order.lines] == [LineState.ALLOCATED] * 2


def test_a_refusal_is_remembered_too():
    store = placed({})
    [refused] = store.handle(cmd("ship", FulfilOrder()))
    assert refused.refused
    store.handle(allocated(1))
    store.handle(allocated(2))  # now it could be fulfilled, but not by the same command id
    assert store.handle(cmd("ship", FulfilOrder())) == [refused]
    assert store.order(ORDER).status is OrderStatus.RESERVED


def test_the_order_is_stored_whole():
    store = placed({})
    store.handle(cmd("o2", PlaceOrder("bob", (OrderLine("C", 1),), "north", True, "most_stock", ("south",)), "o-2"))
    store.handle(allocated(1, "o-2"))
    order = store.order("o-2")
    assert (order.customer, order.preferred_warehouse, order.allow_backorders, order.strategy, order.priority) == (
        "bob", "north", True, "most_stock", ("south",))
    assert order.lines[0].parts == (Part("north", 2, "o-2:1:north"),) and order.status is OrderStatus.RESERVED
    assert store.order("o-3").exists is False


def test_backordered_and_withdrawn_lines_are_stored_and_a_redelivered_answer_changes_nothing_twice():
    table: dict = {}
    store = placed(table)
    queued = cmd(f"backordered:{ORDER}:1", LineBackordered(1, 2))
    first = store.handle(queued)
    store.handle(allocated(2))
    assert store.handle(queued) == first
    assert store.order(ORDER).status is OrderStatus.BACKORDERED
    [cancelled] = store.handle(cmd("cancel", CancelOrder("no")))
    assert (cancelled.released, cancelled.withdrawn) == ((2,), (1,))
    recovered = OrderStore(json.loads(json.dumps(table)))
    assert [line.state for line in recovered.order(ORDER).lines] == [LineState.WITHDRAWN, LineState.RELEASED]
    assert recovered.handle(cmd("cancel", CancelOrder("no"))) == [cancelled]


def test_the_window_forgets_old_command_ids():
    table: dict = {}
    store = placed(table, window=3)
    for i in range(4):
        store.handle(cmd(f"cancel-{i}", CancelOrder("no")))
    remembered = sorted(k for k in table if k.startswith(f"c:{ORDER}:"))
    assert remembered == [f"c:{ORDER}:cancel-1", f"c:{ORDER}:cancel-2", f"c:{ORDER}:cancel-3"]
    # A forgotten command is decided anew: the order exists by now.
    [again] = store.handle(place())
    assert again.refused and store.order(ORDER).status is OrderStatus.CANCELLED


def test_orders_are_independent():
    table: dict = {}
    store = placed(table)
    store.handle(place("o-2", "A"))
    store.handle(cmd("cancel", CancelOrder("no")))
    [allocation] = store.handle(allocated(1, "o-2"))[1:]
    assert allocation.kind is OrderEventKind.ORDER_RESERVED and allocation.order_id == "o-2"
    assert (store.order(ORDER).status, store.order("o-2").status) == (OrderStatus.CANCELLED, OrderStatus.RESERVED)


# -------------------------------------------------------------------- crashes inside a batch
ORDERS = ("o-1", "o-2")
body_strategy = st.one_of(
    st.builds(lambda line, n: LineAllocated(line, tuple(Part(f"w{i}", 1, f"r{line}:{i}") for i in range(n))),
              st.integers(1, 3), st.integers(0, 2)),
    st.builds(LineRejected, st.integers(1, 3), st.just("INSUFFICIENT_STOCK")),
    st.builds(LineBackordered, st.integers(1, 3), st.integers(1, 9)),
    st.builds(CancelOrder, st.just("no")),
    st.builds(FulfilOrder),
)
WINDOW = 5


def setup(table) -> None:
    store = OrderStore(table, window=WINDOW)
    for order in ORDERS:
        store.handle(place(order, "ABC"))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ORDERS), body_strategy), min_size=1, max_size=30), st.data())
def test_a_crash_inside_a_batch_then_redelivery_equals_no_crash(pairs, data):
    commands = [cmd(f"c{i}", body, order, at=i) for i, (order, body) in enumerate(pairs)]
    check_crash_inside_a_batch(lambda table: OrderStore(table, window=WINDOW), setup, commands, data, WINDOW,
                               lambda store, key: store.order(key), ORDERS)
