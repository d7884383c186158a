"""The order saga between an order and its lines' SKUs: each step, then compensation as a whole."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.orders import logic as orders
from streams.orders.records import (
    CancelOrder, FulfilOrder, LineAllocated, LineRejected, LineState, OrderCommand, OrderLine, OrderState,
    OrderStatus, Part, PlaceOrder,
)
from streams.orders.saga import ORDER_SENDER, STOCK_SENDER, order_commands_for, stock_commands_for
from streams.orders.store import OrderStore
from streams.stock.records import (
    AdjustStock, AllocateLine, Allocated, AllocationPart, AllocationRejected, Command, CommandRejected, Commit,
    CreateProduct, Event, RejectReason, Release, Reserve, Reserved, event_id_for,
)
from streams.stock.store import StockStore

ORDER = "o-1"


def cmd(command_id: str, body, at: int = 1) -> OrderCommand:
    return OrderCommand(command_id, ORDER, at, body, sender="api")


def parts(line: int, *warehouses: str) -> tuple[Part, ...]:
    return tuple(Part(w, 1 + i, f"{ORDER}:{line}:{w}") for i, w in enumerate(warehouses))


def answer(line: int, body) -> OrderCommand:
    return OrderCommand(f"allocated:{ORDER}:{line}", ORDER, 2, body, STOCK_SENDER)


def run(state: OrderState, *commands: OrderCommand) -> tuple[OrderState, list[Command]]:
    """The order after ``commands``, and the stock commands their decisions sent."""
    sent: list[Command] = []
    for command in commands:
        events = orders.decide(state, command)
        sent.extend(stock_commands_for(command, events))
        state = orders.fold(state, events)
    return state, sent


PLACE = cmd("place", PlaceOrder("alice", (OrderLine("A", 3), OrderLine("B", 1)), "north", False, "most_stock",
                                ("south", "north")), at=5)


# ------------------------------------------------------------------------ stock_commands_for
def test_a_placed_order_allocates_each_line_at_its_sku():
    _, sent = run(OrderState(ORDER), PLACE)
    assert sent == [
        Command(f"allocate:{ORDER}:1", "A", 5, AllocateLine(ORDER, 1, 3, "north", "most_stock", ("south", "north")),
                ORDER_SENDER),
        Command(f"allocate:{ORDER}:2", "B", 5, AllocateLine(ORDER, 2, 1, "north", "most_stock", ("south", "north")),
                ORDER_SENDER)]


def test_refusals_allocations_and_rejections_of_nothing_held_send_nothing():
    state, _ = run(OrderState(ORDER), PLACE)
    for command in (PLACE, cmd("ship", FulfilOrder()), answer(1, LineAllocated(1, parts(1, "north"))),
                    answer(9, LineAllocated(9, ()))):
        state, sent = run(state, command)
        assert sent == [], command
    _, sent = run(OrderState(ORDER), cmd("cancel", CancelOrder("x")))
    assert sent == []


def test_a_rejected_line_releases_every_part_of_the_lines_already_allocated():
    state, _ = run(OrderState(ORDER), PLACE, answer(1, LineAllocated(1, parts(1, "north", "south"))))
    state, sent = run(state, answer(2, LineRejected(2, "INSUFFICIENT_STOCK")))
    assert state.status is OrderStatus.REJECTED
    assert sent == [Command(f"release:{ORDER}:1:north", "A", 2, Release(f"{ORDER}:1:north"), ORDER_SENDER),
                    Command(f"release:{ORDER}:1:south", "A", 2, Release(f"{ORDER}:1:south"), ORDER_SENDER)]


def test_a_line_allocated_after_its_order_was_cancelled_is_released_at_once():
    state, _ = run(OrderState(ORDER), PLACE, answer(1, LineAllocated(1, parts(1, "north"))))
    state, sent = run(state, cmd("cancel", CancelOrder("no"), at=7))
    assert [c.command_id for c in sent] == [f"release:{ORDER}:1:north"]
    _, sent = run(state, answer(2, LineAllocated(2, parts(2, "east"))))
    assert sent == [Command(f"release:{ORDER}:2:east", "B", 2, Release(f"{ORDER}:2:east"), ORDER_SENDER)]


def test_a_fulfilled_order_commits_every_part():
    state, _ = run(OrderState(ORDER), PLACE, answer(1, LineAllocated(1, parts(1, "north", "south"))),
                   answer(2, LineAllocated(2, parts(2, "north"))))
    _, sent = run(state, cmd("ship", FulfilOrder(), at=9))
    assert sent == [Command(f"commit:{rid}", sku, 9, Commit(rid), ORDER_SENDER)
                    for sku, rid in (("A", f"{ORDER}:1:north"), ("A", f"{ORDER}:1:south"), ("B", f"{ORDER}:2:north"))]


def test_a_redelivered_decision_sends_the_same_commands_even_re_stamped():
    store = OrderStore({})
    first = stock_commands_for(PLACE, store.handle(PLACE))
    again = cmd("place", PlaceOrder("mallory", (OrderLine("Z", 9),)), at=99)  # the id reused, or retried late
    assert stock_commands_for(again, store.handle(again)) == first


# ------------------------------------------------------------------------ order_commands_for
def allocate(line: int = 1) -> Command:
    return Command(f"allocate:{ORDER}:{line}", "A", 5, AllocateLine(ORDER, line, 3), ORDER_SENDER)


def stock_event(body, command: Command, index: int = 0) -> Event:
    return Event(event_id_for(command.command_id, index), command.command_id, "A", 1, 5, "", 0, 0, body)


def test_an_allocation_answers_the_order_with_its_parts():
    command = allocate(2)
    split = (AllocationPart("north", 2, f"{ORDER}:2:north"), AllocationPart("south", 1, f"{ORDER}:2:south"))
    events = [stock_event(Allocated(ORDER, 2, 3, "priority", {"north": 2, "south": 4}, split), command),
              *(stock_event(Reserved(p.reservation_id, ORDER, p.quantity), command, i)
                for i, p in enumerate(split, start=1))]
    assert order_commands_for(command, events) == [OrderCommand(
        f"allocated:{ORDER}:2", ORDER, 5, LineAllocated(2, (Part("north", 2, f"{ORDER}:2:north"),
                                                            Part("south", 1, f"{ORDER}:2:south"))), STOCK_SENDER)]


def test_a_rejected_allocation_answers_the_order_with_the_reason():
    command = allocate()
    rejected = AllocationRejected(ORDER, 1, 3, RejectReason.INSUFFICIENT_STOCK, "2 available", "priority", {})
    assert order_commands_for(command, [stock_event(rejected, command)]) == [OrderCommand(
        f"allocated:{ORDER}:1", ORDER, 5, LineRejected(1, "INSUFFICIENT_STOCK", "2 available"), STOCK_SENDER)]
    refused = CommandRejected("AllocateLine", RejectReason.UNKNOWN_PRODUCT, "no product A")
    [answered] = order_commands_for(command, [stock_event(refused, command)])
    assert answered.body == LineRejected(1, "UNKNOWN_PRODUCT", "no product A")


def test_an_allocate_answered_with_another_commands_events_rejects_the_line():
    """A client reused the id: the SKU answers with what that id did before, so nothing was held
    for this line; the order must not wait for it forever."""
    command = allocate()
    other = stock_event(Reserved("someone-elses", "o-9", 1), command)
    [answered] = order_commands_for(command, [other])
    assert isinstance(answered.body, LineRejected) and answered.body.reason == "OTHER"
    elsewhere = stock_event(Allocated("o-9", 1, 3, "priority", {}, ()), command)
    assert isinstance(order_commands_for(command, [elsewhere])[0].body, LineRejected)


def test_other_stock_decisions_send_nothing_to_orders():
    reserve = Command("r", "A", 1, Reserve("r", ORDER, "north", 1))
    assert order_commands_for(reserve, [stock_event(Reserved("r", ORDER, 1), reserve)]) == []


def test_the_saga_end_to_end_with_the_skus_own_stores():
    """Real allocations: a split line and a line that cannot be served; the order is rejected and
    the split line's reservations end released at its SKU."""
    stock = StockStore({})
    for i, body in enumerate((CreateProduct("A"), AdjustStock("north", 2, "in", "h1"),
                              AdjustStock("south", 5, "in", "h2"), CreateProduct("B"))):
        stock.handle(Command(f"setup-{i}", "B" if i == 3 else "A", 1, body))
    order = OrderStore({})
    pending = stock_commands_for(PLACE, order.handle(PLACE))
    while pending:
        command = pending.pop(0)
        for answered in order_commands_for(command, stock.handle(command)):
            pending.extend(stock_commands_for(answered, order.handle(answered)))
    state = order.order(ORDER)
    assert state.status is OrderStatus.REJECTED
    assert [line.state for line in state.lines] == [LineState.RELEASED, LineState.REJECTED]
    # The preferred warehouse first (2 units), the rest from the other (the line is split).
    assert {(p.warehouse, p.quantity) for p in state.lines[0].parts} == {("north", 2), ("south", 1)}
    assert stock.sku("A").level("south").reserved == 0 and stock.sku("A").level("north").reserved == 0


# ---------------------------------------------------------------------- compensation, whole
SKUS = ("A", "B", "C", "D")
line_answers = st.one_of(st.none(), st.lists(st.sampled_from(("north", "south", "east")), unique=True,
                                             min_size=1, max_size=3))
ACTIONS = ("answer",) * 4 + ("cancel", "fulfil", "redeliver", "redeliver")
actions = st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 100)), max_size=25)


class Saga:
    """One order's store; every stock command it sends, by id (a receiver would ignore a repeat)."""

    def __init__(self, lines: int) -> None:
        self.store = OrderStore({}, window=8)
        self.sent: dict[str, Command] = {}
        self.handled: list[OrderCommand] = []
        self.lines = lines
        self.handle(cmd("place", PlaceOrder("alice", tuple(OrderLine(s, 2) for s in SKUS[:lines]))))

    def handle(self, command: OrderCommand) -> None:
        self.handled.append(command)
        for stock_command in stock_commands_for(command, self.store.handle(command)):
            previous = self.sent.setdefault(stock_command.command_id, stock_command)
            assert previous == stock_command, "one command id, two different commands"
        state = self.store.order(ORDER)
        if state.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            assert all(line.state is not LineState.ALLOCATED for line in state.lines), state

    def answer(self, line: int, warehouses: list[str] | None) -> None:
        """The SKU's answer for ``line``: the same one whenever it is delivered (its store's)."""
        body = (LineRejected(line, "INSUFFICIENT_STOCK") if warehouses is None
                else LineAllocated(line, parts(line, *warehouses)))
        self.handle(answer(line, body))

    def ids(self, kind: type) -> set[str]:
        return {c.command_id for c in self.sent.values() if isinstance(c.body, kind)}


@settings(max_examples=500, deadline=None)
@given(st.integers(1, len(SKUS)), st.lists(line_answers, min_size=len(SKUS), max_size=len(SKUS)), actions,
       st.data())
def test_once_every_line_answered_nothing_stays_held_and_every_part_is_settled_once(lines, answers, steps, data):
    saga = Saga(lines)
    for step, (kind, n) in enumerate(steps):
        if kind == "answer":
            line = n % lines + 1
            saga.answer(line, answers[line - 1])
        elif kind == "cancel":
            saga.handle(cmd(f"cancel-{step}", CancelOrder("changed my mind"), at=step))
        elif kind == "fulfil":
            saga.handle(cmd(f"fulfil-{step}", FulfilOrder(), at=step))
        else:  # a redelivery: any command seen before, with its own id
            saga.handle(saga.handled[n % len(saga.handled)])
    unanswered = [n for n in range(1, lines + 1) if saga.store.order(ORDER).line(n).state is LineState.PENDING]
    for line in data.draw(st.permutations(unanswered), label="the other answers"):
        saga.answer(line, answers[line - 1])

    state = saga.store.order(ORDER)
    states = {line.state for line in state.lines}
    if state.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        assert states <= {LineState.RELEASED, LineState.REJECTED}
    else:
        assert (state.status, states) in ((OrderStatus.RESERVED, {LineState.ALLOCATED}),
                                          (OrderStatus.FULFILLED, {LineState.COMMITTED}))
        assert all(a is not None for a in answers[:lines])
    if state.status is OrderStatus.REJECTED:
        assert any(answers[n] is None for n in range(lines))

    def reservations(line_state: LineState) -> set[str]:
        return {part.reservation_id for line in state.lines if line.state is line_state for part in line.parts}
    assert saga.ids(Release) == {f"release:{r}" for r in reservations(LineState.RELEASED)}
    assert saga.ids(Commit) == {f"commit:{r}" for r in reservations(LineState.COMMITTED)}
    assert saga.ids(AllocateLine) == {f"allocate:{ORDER}:{n}" for n in range(1, lines + 1)}
    line_of = {part.reservation_id: line for line in state.lines for part in line.parts}
    for command in saga.sent.values():
        if isinstance(command.body, (Release, Commit)):
            assert command.sku == line_of[command.body.reservation_id].sku
