"""An order saga's pure decisions: examples, the wire format, then properties over random answers."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import order_command_codec, order_event_codec
from streams.orders.logic import decide, evolve, fold
from streams.orders.records import (
    MAX_LINES, CancelOrder, FulfilOrder, LineAllocated, LineRejected, LineState, OrderCommand,
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


@pytest.mark.parametrize("answer", [allocated(1), rejected(1), allocated(7), rejected(7)])
def test_a_second_answer_or_one_for_no_line_is_refused_and_changes_nothing(answer):
    state, _ = run(placed(), allocated(1))
    after, [refused] = run(state, answer)
    assert refused.reason is OrderRefusal.OTHER and after == state and refused.seq == state.seq
    assert refused.lines == state.lines and refused.status is OrderStatus.PENDING


@pytest.mark.parametrize("body", [CancelOrder("x"), FulfilOrder(), LineAllocated(1, ()),
                                  LineRejected(1, "OTHER")])
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
                                  LineRejected(1, "UNKNOWN_PRODUCT", "no product A")])
def test_command_round_trip(body):
    command = OrderCommand("c-1", ORDER, 1700000000000, body, "api")
    codec = order_command_codec()
    assert order_command_from_avro(codec.decode(codec.encode(order_command_to_avro(command)))) == command


def test_event_round_trip():
    state, events = run(OrderState(ORDER), cmd("x", FulfilOrder()), place("A", "B", priority=("n",)),
                        allocated(1, "n", "s"), rejected(2), allocated(2))
    assert {e.kind for e in events} >= {K.REFUSED, K.ORDER_REJECTED, K.LINE_ALLOCATED}
    codec = order_event_codec()
    for event in events:
        assert order_event_from_avro(codec.decode(codec.encode(order_event_to_avro(event)))) == event


# ----------------------------------------------------------------------------- properties
steps = st.lists(st.one_of(
    st.tuples(st.just("allocated"), st.integers(0, 5), st.lists(st.sampled_from("nsew"), unique=True, max_size=3)),
    st.tuples(st.just("rejected"), st.integers(0, 5), st.just([])),
    st.tuples(st.sampled_from(["cancel", "fulfil", "place"]), st.integers(0, 5), st.just([])),
), max_size=30)


def commands_of(drawn) -> list[OrderCommand]:
    """Answers for lines 0..5 of a 1..4-line order (some for no line), cancels, fulfils, places."""
    out = []
    for i, (kind, line, warehouses) in enumerate(drawn):
        body = {"allocated": LineAllocated(line, parts(line, *warehouses)),
                "rejected": LineRejected(line, "INSUFFICIENT_STOCK"),
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
def test_each_event_names_exactly_the_lines_it_released_or_committed(lines, drawn):
    state = start(lines)
    for command in commands_of(drawn):
        for event in decide(state, command):
            after = evolve(state, event)
            pairs = list(zip(state.lines, after.lines, strict=True))
            assert all(b.line == a.line for b, a in pairs)
            assert all(a.parts == b.parts for b, a in pairs if b.state is not LineState.PENDING), \
                "only a line's allocation sets its parts"

            def moved(to: LineState) -> tuple[int, ...]:
                return tuple(a.line for b, a in pairs if (b.state, a.state) == (LineState.ALLOCATED, to))
            assert (event.released, event.committed) == (moved(LineState.RELEASED), moved(LineState.COMMITTED))
            state = after


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4), steps)
def test_an_ended_order_never_holds_a_line_and_its_status_never_goes_back(lines, drawn):
    state = start(lines)
    allowed = {OrderStatus.PENDING: {OrderStatus.RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED},
               OrderStatus.RESERVED: {OrderStatus.FULFILLED, OrderStatus.CANCELLED}}
    for command in commands_of(drawn):
        after = fold(state, decide(state, command))
        assert after.status == state.status or after.status in allowed.get(state.status, ())
        if after.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            assert LineState.ALLOCATED not in line_states(after) and LineState.COMMITTED not in line_states(after)
        if after.status is OrderStatus.RESERVED:
            assert set(line_states(after)) == {LineState.ALLOCATED}
        if after.status is OrderStatus.FULFILLED:
            assert set(line_states(after)) == {LineState.COMMITTED}
        state = after
