"""An order saga's pure decisions: examples, the wire format, then properties over random answers."""
from __future__ import annotations

import pytest
from fastavro import parse_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import AvroCodec, order_command_codec, order_event_codec, released_writers
from streams.orders.logic import decide, evolve, fold
from streams.orders.records import (
    MAX_LINES, CancelOrder, FulfilOrder, LineAllocated, LineBackordered, LineRejected, LineState, OrderCommand,
    OrderEventKind, OrderLine, OrderRefusal, OrderState, OrderStatus, Part, PlaceOrder,
    order_command_from_avro, order_command_to_avro, order_event_from_avro, order_event_to_avro,
    order_event_id,
)
from streams.stock.records import event_id_for
from streams.warehouses.records import warehouse_event_id

ORDER = "o-1"
K = OrderEventKind


def cmd(command_id: str, body, at: int = 1) -> OrderCommand:
    return OrderCommand(command_id, ORDER, at, body, sender="test")


def place(*skus: str, **options) -> OrderCommand:
    return cmd("place", PlaceOrder("alice", tuple(OrderLine(s, 2) for s in skus), **options))


def parts(line: int, *warehouses: str) -> tuple[Part, ...]:
    return tuple(Part(w, 1, f"{ORDER}:{line}:{w}") for w in warehouses)


def allocated(line: int, *warehouses: str) -> OrderCommand:
    return cmd(f"allocated:{ORDER}:{line}", LineAllocated(line, parts(line, *(warehouses or ("north",)))))


def rejected(line: int) -> OrderCommand:
    return cmd(f"allocated:{ORDER}:{line}", LineRejected(line, "INSUFFICIENT_STOCK", "1 available, 2 needed"))


def backordered(line: int, position: int = 1) -> OrderCommand:
    return cmd(f"backordered:{ORDER}:{line}", LineBackordered(line, position))


def run(state: OrderState, *commands: OrderCommand) -> tuple[OrderState, list]:
    events = []
    for command in commands:
        decided = decide(state, command)
        events.extend(decided)
        state = fold(state, decided)
    return state, events


def placed(*skus: str) -> OrderState:
    state, _ = run(OrderState(ORDER), place(*(skus or ("A", "B"))))
    return state


def line_states(state: OrderState) -> list[LineState]:
    return [line.state for line in state.lines]


def test_a_placed_order_numbers_its_lines_from_one_and_keeps_its_options():
    command = place("A", "B", preferred_warehouse="north", strategy="most_stock", priority=("south",))
    state, [event] = run(OrderState(ORDER), command)
    assert (event.kind, event.status, event.seq, event.customer) == (K.ORDER_PLACED, OrderStatus.PENDING, 1, "alice")
    assert [(o.line, o.sku, o.quantity, o.state) for o in event.lines] == [
        (1, "A", 2, LineState.PENDING), (2, "B", 2, LineState.PENDING)]
    assert (state.preferred_warehouse, state.strategy, state.priority) == ("north", "most_stock", ("south",))
    _, [again] = run(state, cmd("place-again", command.body))
    assert again.reason is OrderRefusal.ORDER_EXISTS


@pytest.mark.parametrize("lines", [(), tuple(OrderLine(f"S{i}", 1) for i in range(MAX_LINES + 1)),
                                   (OrderLine("A", 0),), (OrderLine(" ", 1),),
                                   (OrderLine("A", 1), OrderLine("A", 2))])
def test_an_invalid_order_is_refused_and_not_placed(lines):
    state, [refused] = run(OrderState(ORDER), cmd("place", PlaceOrder("alice", lines)))
    assert refused.reason is OrderRefusal.INVALID_ORDER and refused.status is None
    assert state == OrderState(ORDER) and refused.seq == 0


def test_the_last_allocated_line_reserves_the_order_in_a_second_event():
    state, [first] = run(placed(), allocated(1, "north", "south"))
    assert (first.kind, first.status, first.seq) == (K.LINE_ALLOCATED, OrderStatus.PENDING, 2)
    assert state.line(1).parts == parts(1, "north", "south")
    state, events = run(state, allocated(2))
    assert [(e.kind, e.status, e.seq) for e in events] == [
        (K.LINE_ALLOCATED, OrderStatus.PENDING, 3), (K.ORDER_RESERVED, OrderStatus.RESERVED, 4)]
    assert [e.event_id for e in events] == [order_event_id(f"allocated:{ORDER}:2", i) for i in (0, 1)]
    assert line_states(state) == [LineState.ALLOCATED] * 2 and events[1].released == ()


def test_a_rejected_line_rejects_the_order_and_releases_the_allocated_lines_in_the_same_event():
    state, _ = run(placed("A", "B", "C"), allocated(1))
    state, events = run(state, rejected(2))
    assert [e.kind for e in events] == [K.LINE_REJECTED, K.ORDER_REJECTED]
    assert "INSUFFICIENT_STOCK" in events[1].detail and events[1].released == (1,)
    assert state.status is OrderStatus.REJECTED
    assert line_states(state) == [LineState.RELEASED, LineState.REJECTED, LineState.PENDING]
    # The third line's allocation arrives late: it is released at once.
    late, events = run(state, allocated(3))
    assert [(e.kind, e.released) for e in events] == [(K.LINE_ALLOCATED, ()), (K.PARTS_RELEASED, (3,))]
    assert line_states(late) == [LineState.RELEASED, LineState.REJECTED, LineState.RELEASED]
    # Or it is rejected too: nothing to release, the order stays rejected.
    late, [event] = run(state, rejected(3))
    assert (event.kind, late.status, event.released) == (K.LINE_REJECTED, OrderStatus.REJECTED, ())


def test_cancelling_releases_what_is_allocated_and_late_answers_are_compensated():
    state, _ = run(placed("A", "B", "C"), allocated(1))
    state, [cancelled] = run(state, cmd("cancel", CancelOrder("changed my mind")))
    assert (cancelled.kind, cancelled.status, cancelled.released, cancelled.detail) == (
        K.ORDER_CANCELLED, OrderStatus.CANCELLED, (1,), "changed my mind")
    state, events = run(state, allocated(2), rejected(3))
    assert [e.kind for e in events] == [K.LINE_ALLOCATED, K.PARTS_RELEASED, K.LINE_REJECTED]
    assert line_states(state) == [LineState.RELEASED, LineState.RELEASED, LineState.REJECTED]
    _, [again] = run(state, cmd("cancel-2", CancelOrder("again")))
    assert again.reason is OrderRefusal.NOT_CANCELLABLE


def test_a_reserved_order_is_fulfilled_by_committing_every_line_or_cancelled_by_releasing_them():
    reserved, _ = run(placed(), allocated(1), allocated(2))
    state, [fulfilled] = run(reserved, cmd("ship", FulfilOrder()))
    assert (fulfilled.kind, fulfilled.committed, fulfilled.released) == (K.ORDER_FULFILLED, (1, 2), ())
    assert state.status is OrderStatus.FULFILLED and line_states(state) == [LineState.COMMITTED] * 2
    _, [refused] = run(state, cmd("cancel", CancelOrder("late")))
    assert refused.reason is OrderRefusal.NOT_CANCELLABLE
    state, [cancelled] = run(reserved, cmd("cancel", CancelOrder("no")))
    assert cancelled.released == (1, 2) and line_states(state) == [LineState.RELEASED] * 2
    _, [refused] = run(placed(), cmd("ship", FulfilOrder()))
    assert refused.reason is OrderRefusal.NOT_RESERVED


def test_a_backordered_line_waits_and_the_order_is_backordered_once_no_line_waits_for_an_answer():
    state, [event] = run(placed("A", "B", "C"), backordered(1, 3))
    assert (event.kind, event.status, line_states(state)) == (
        K.LINE_BACKORDERED, OrderStatus.PENDING, [LineState.BACKORDERED, LineState.PENDING, LineState.PENDING])
    assert "position 3" in event.detail and state.line(1).parts == ()
    state, [event] = run(state, allocated(2))
    assert (event.kind, event.status) == (K.LINE_ALLOCATED, OrderStatus.PENDING)
    state, events = run(state, backordered(3, 1))
    assert [(e.kind, e.status) for e in events] == [(K.LINE_BACKORDERED, OrderStatus.PENDING),
                                                    (K.ORDER_BACKORDERED, OrderStatus.BACKORDERED)]
    assert [e.event_id for e in events] == [order_event_id(f"backordered:{ORDER}:3", i) for i in (0, 1)]
    _, [refused] = run(state, cmd("ship", FulfilOrder()))
    assert refused.reason is OrderRefusal.NOT_RESERVED
    # Stock arrives: the queued lines are allocated; the last one reserves the order.
    state, [event] = run(state, allocated(3, "south"))
    assert (event.kind, event.status) == (K.LINE_ALLOCATED, OrderStatus.BACKORDERED)
    state, events = run(state, allocated(1))
    assert [(e.kind, e.status) for e in events] == [(K.LINE_ALLOCATED, OrderStatus.BACKORDERED),
                                                    (K.ORDER_RESERVED, OrderStatus.RESERVED)]
    assert line_states(state) == [LineState.ALLOCATED] * 3 and state.line(3).parts == parts(3, "south")
    state, [fulfilled] = run(state, cmd("ship", FulfilOrder()))
    assert fulfilled.committed == (1, 2, 3) and state.status is OrderStatus.FULFILLED


def test_a_line_served_before_the_others_answered_leaves_the_order_pending_then_reserves_it():
    state, events = run(placed(), backordered(1), allocated(1), allocated(2))
    assert [e.kind for e in events] == [K.LINE_BACKORDERED, K.LINE_ALLOCATED, K.LINE_ALLOCATED, K.ORDER_RESERVED]
    assert K.ORDER_BACKORDERED not in [e.kind for e in events] and state.status is OrderStatus.RESERVED


def test_a_rejected_line_withdraws_the_backordered_ones_and_late_answers_are_compensated():
    state, _ = run(placed("A", "B", "C", "D"), allocated(1), backordered(2))
    state, events = run(state, rejected(3))
    assert [e.kind for e in events] == [K.LINE_REJECTED, K.ORDER_REJECTED]
    assert (events[1].released, events[1].withdrawn) == ((1,), (2,))
    assert line_states(state) == [LineState.RELEASED, LineState.WITHDRAWN, LineState.REJECTED, LineState.PENDING]
    # The fourth line is queued after the order was rejected: withdrawn at once.
    late, events = run(state, backordered(4, 2))
    assert [(e.kind, e.withdrawn, e.status) for e in events] == [
        (K.LINE_BACKORDERED, (), OrderStatus.REJECTED), (K.BACKORDER_WITHDRAWN, (4,), OrderStatus.REJECTED)]
    assert line_states(late)[3] is LineState.WITHDRAWN
    # The second line was served before its withdrawal arrived: its parts are released at once.
    late, events = run(late, allocated(2, "north", "south"))
    assert [(e.kind, e.released) for e in events] == [(K.LINE_ALLOCATED, ()), (K.PARTS_RELEASED, (2,))]
    assert late.line(2).state is LineState.RELEASED and late.line(2).parts == parts(2, "north", "south")
    assert late.status is OrderStatus.REJECTED


def test_cancelling_a_backordered_order_releases_its_allocated_lines_and_withdraws_its_queued_ones():
    state, _ = run(placed("A", "B", "C"), allocated(1), backordered(2), backordered(3))
    assert state.status is OrderStatus.BACKORDERED
    state, [cancelled] = run(state, cmd("cancel", CancelOrder("too slow")))
    assert (cancelled.kind, cancelled.status, cancelled.released, cancelled.withdrawn) == (
        K.ORDER_CANCELLED, OrderStatus.CANCELLED, (1,), (2, 3))
    assert line_states(state) == [LineState.RELEASED, LineState.WITHDRAWN, LineState.WITHDRAWN]
    state, events = run(state, allocated(3))
    assert [(e.kind, e.released) for e in events] == [(K.LINE_ALLOCATED, ()), (K.PARTS_RELEASED, (3,))]
    assert line_states(state) == [LineState.RELEASED, LineState.WITHDRAWN, LineState.RELEASED]


@pytest.mark.parametrize("answer", [backordered(1), rejected(2), backordered(7)])
def test_a_queued_line_takes_nothing_but_its_allocation(answer):
    state, _ = run(placed(), allocated(1), backordered(2))
    after, [refused] = run(state, answer)
    assert refused.reason is OrderRefusal.OTHER and after == state


@pytest.mark.parametrize("answer", [allocated(1), rejected(1), allocated(7), rejected(7)])
def test_a_second_answer_or_one_for_no_line_is_refused_and_changes_nothing(answer):
    state, _ = run(placed(), allocated(1))
    after, [refused] = run(state, answer)
    assert refused.reason is OrderRefusal.OTHER and after == state and refused.seq == state.seq
    assert refused.lines == state.lines and refused.status is OrderStatus.PENDING


@pytest.mark.parametrize("body", [CancelOrder("x"), FulfilOrder(), LineAllocated(1, ()),
                                  LineRejected(1, "OTHER"), LineBackordered(1, 1)])
def test_an_unknown_order_refuses_everything_but_its_placement(body):
    nothing = OrderState(ORDER)
    state, [refused] = run(nothing, cmd("c", body))
    assert refused.reason is OrderRefusal.UNKNOWN_ORDER and state == nothing and refused.status is None


def test_a_command_for_another_order_is_not_decided():
    with pytest.raises(ValueError):
        decide(placed(), OrderCommand("c", "o-2", 1, FulfilOrder()))


@given(st.text(max_size=20))
def test_event_ids_are_deterministic_per_command_id_and_index_and_not_the_other_areas(command_id):
    state, _ = run(placed(), allocated(1))
    answer = cmd(command_id, LineAllocated(2, parts(2, "north")))
    events = decide(state, answer)
    assert decide(state, answer) == events and len(events) == 2
    ids = [e.event_id for e in events]
    assert ids == [order_event_id(command_id, i) for i in (0, 1)] and len(set(ids)) == 2
    others = {event_id_for(command_id, i) for i in (0, 1)} | {warehouse_event_id(command_id)}
    assert not others & set(ids)


# ------------------------------------------------------------------------------- wire format
@pytest.mark.parametrize("body", [PlaceOrder("alice", (OrderLine("A", 2), OrderLine("B", 1)), "north", True,
                                             "most_stock", ("north", "south")),
                                  CancelOrder("no"), FulfilOrder(), LineAllocated(2, parts(2, "n", "s")),
                                  LineRejected(1, "UNKNOWN_PRODUCT", "no product A"), LineBackordered(3, 12)])
def test_command_round_trip(body):
    command = OrderCommand("c-1", ORDER, 1700000000000, body, "api")
    codec = order_command_codec()
    assert order_command_from_avro(codec.decode(codec.encode(order_command_to_avro(command)))) == command


def test_event_round_trip():
    state, events = run(OrderState(ORDER), cmd("x", FulfilOrder()), place("A", "B", priority=("n",)),
                        allocated(1, "n", "s"), rejected(2), allocated(2))
    assert {e.kind for e in events} >= {K.REFUSED, K.ORDER_REJECTED, K.LINE_ALLOCATED}
    _, more = run(placed("A", "B", "C"), allocated(1), backordered(2, 5), backordered(3),
                  cmd("cancel", CancelOrder("no")), allocated(2))
    assert {e.kind for e in more} >= {K.LINE_BACKORDERED, K.ORDER_BACKORDERED, K.PARTS_RELEASED}
    assert any(e.withdrawn for e in more)
    codec = order_event_codec()
    for event in events + more:
        assert order_event_from_avro(codec.decode(codec.encode(order_event_to_avro(event)))) == event


_EVENT = "inventory.orders.OrderEvent"
_COMMAND = "inventory.orders.OrderCommand"


@pytest.mark.parametrize("name, codec, to_avro, from_avro, record", [
    (_COMMAND, order_command_codec, order_command_to_avro, order_command_from_avro, allocated(2, "n", "s")),
    (_COMMAND, order_command_codec, order_command_to_avro, order_command_from_avro, place("A", "B")),
    (_EVENT, order_event_codec, order_event_to_avro, order_event_from_avro,
     run(placed(), allocated(1), rejected(2))[1][-1]),
])
def test_records_of_every_released_order_schema_still_decode(name, codec, to_avro, from_avro, record):
    """Orders in flight across an upgrade: what an older producer wrote is read by the newer one
    (a missing ``withdrawn`` is empty)."""
    released = released_writers(name)
    assert released, f"no released version of {name} in schemas/released/"
    for writer_schema in released:
        old = AvroCodec(parse_schema(writer_schema, _write_hint=False))
        assert from_avro(codec().decode(old.encode(to_avro(record)))) == record


def test_the_order_command_union_only_grows_at_the_end():
    """A body's union index is on the wire: a new body type goes last."""
    def members(schema) -> list[str]:
        body = next(f for f in schema["fields"] if f["name"] == "body")
        return [t if isinstance(t, str) else t["name"] for t in body["type"]]
    current = members(order_command_codec().schema)
    for released in released_writers(_COMMAND):
        assert current[:len(members(released))] == members(released)
    assert current[-1] == "inventory.orders.PartArrived"


# ----------------------------------------------------------------------------- properties
steps = st.lists(st.one_of(
    st.tuples(st.just("allocated"), st.integers(0, 5), st.lists(st.sampled_from("nsew"), unique=True, max_size=3)),
    st.tuples(st.sampled_from(["rejected", "backordered"]), st.integers(0, 5), st.just([])),
    st.tuples(st.sampled_from(["cancel", "fulfil", "place"]), st.integers(0, 5), st.just([])),
), max_size=30)


def commands_of(drawn) -> list[OrderCommand]:
    """Answers for lines 0..5 of a 1..4-line order (some for no line), cancels, fulfils, places."""
    out = []
    for i, (kind, line, warehouses) in enumerate(drawn):
        body = {"allocated": LineAllocated(line, parts(line, *warehouses)),
                "rejected": LineRejected(line, "INSUFFICIENT_STOCK"),
                "backordered": LineBackordered(line, i + 1),
                "cancel": CancelOrder("c"), "fulfil": FulfilOrder(),
                "place": PlaceOrder("bob", (OrderLine("A", 1),))}[kind]
        out.append(cmd(f"c{i}", body, i))
    return out


def start(lines: int) -> OrderState:
    return placed(*"ABCD"[:lines]) if lines else OrderState(ORDER)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 4), steps)
def test_the_state_is_the_fold_of_its_events_and_a_refusal_changes_nothing(lines, drawn):
    state = start(lines)
    for command in commands_of(drawn):
        events = decide(state, command)
        assert events and [e.event_id for e in events] == [order_event_id(command.command_id, i)
                                                           for i in range(len(events))]
        after = fold(state, events)
        if events[0].refused:
            assert len(events) == 1 and events[0].reason is not None
            assert after == state and events[0].seq == state.seq
            assert (events[0].status, events[0].lines) == (state.status, state.lines)
        else:
            assert [e.seq for e in events] == [state.seq + i for i in range(1, len(events) + 1)]
            assert all(e.reason is None for e in events)
        state = after


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4), steps)
def test_each_event_names_exactly_the_lines_it_released_committed_or_withdrew(lines, drawn):
    state = start(lines)
    for command in commands_of(drawn):
        for event in decide(state, command):
            after = evolve(state, event)
            pairs = list(zip(state.lines, after.lines, strict=True))
            assert all(b.line == a.line for b, a in pairs)
            assert all(a.parts == b.parts for b, a in pairs if a.state is not LineState.ALLOCATED
                       or b.state is LineState.ALLOCATED), "only a line's allocation sets its parts"

            def moved(held: LineState, to: LineState) -> tuple[int, ...]:
                return tuple(a.line for b, a in pairs if (b.state, a.state) == (held, to))
            assert (event.released, event.committed, event.withdrawn) == (
                moved(LineState.ALLOCATED, LineState.RELEASED), moved(LineState.ALLOCATED, LineState.COMMITTED),
                moved(LineState.BACKORDERED, LineState.WITHDRAWN))
            state = after


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4), steps)
def test_an_ended_order_never_holds_nor_queues_a_line_and_its_status_never_goes_back(lines, drawn):
    state = start(lines)
    allowed = {OrderStatus.PENDING: {OrderStatus.RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED,
                                     OrderStatus.BACKORDERED},
               OrderStatus.BACKORDERED: {OrderStatus.RESERVED, OrderStatus.CANCELLED},
               OrderStatus.RESERVED: {OrderStatus.FULFILLED, OrderStatus.CANCELLED}}
    for command in commands_of(drawn):
        after = fold(state, decide(state, command))
        assert after.status == state.status or after.status in allowed.get(state.status, ())
        if after.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            assert not {LineState.ALLOCATED, LineState.COMMITTED, LineState.BACKORDERED} & set(line_states(after))
        if after.status is OrderStatus.PENDING:
            assert LineState.PENDING in line_states(after)
            assert not {LineState.REJECTED, LineState.WITHDRAWN} & set(line_states(after))
        if after.status is OrderStatus.BACKORDERED:
            assert LineState.BACKORDERED in line_states(after)
            assert set(line_states(after)) <= {LineState.ALLOCATED, LineState.BACKORDERED}
        if after.status is OrderStatus.RESERVED:
            assert set(line_states(after)) == {LineState.ALLOCATED}
        if after.status is OrderStatus.FULFILLED:
            assert set(line_states(after)) == {LineState.COMMITTED}
        state = after
