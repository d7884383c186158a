"""The order saga between an order and its lines' SKUs: each step, then compensation as a whole."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.orders import logic as orders
from streams.orders.records import (
    CancelOrder, FulfilOrder, LineAllocated, LineBackordered, LineRejected, LineState, OrderCommand, OrderLine,
    OrderState, OrderStatus, Part, PlaceOrder,
)
from streams.orders.saga import ORDER_SENDER, STOCK_SENDER, order_commands_for, stock_commands_for
from streams.orders.store import OrderStore
from streams.stock.records import (
    AdjustStock, AllocateLine, Allocated, AllocationPart, AllocationRejected, Backordered, CancelBackorder,
    Command, CommandRejected, Commit, CreateProduct, Event, RejectReason, Release, Reserve, Reserved,
    StockAdjusted, event_id_for,
)
from streams.stock.store import StockStore

ORDER = "o-1"


def cmd(command_id: str, body, at: int = 1) -> OrderCommand:
    return OrderCommand(command_id, ORDER, at, body, sender="api")


def parts(line: int, *warehouses: str) -> tuple[Part, ...]:
    return tuple(Part(w, 1 + i, f"{ORDER}:{line}:{w}") for i, w in enumerate(warehouses))


def answer(line: int, body) -> OrderCommand:
    prefix = "backordered" if isinstance(body, LineBackordered) else "allocated"
    return OrderCommand(f"{prefix}:{ORDER}:{line}", ORDER, 2, body, STOCK_SENDER)


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


def test_an_order_that_allows_backorders_asks_its_skus_to_queue_what_they_cannot_serve():
    body = PlaceOrder("alice", (OrderLine("A", 3), OrderLine("B", 1)), allow_backorders=True)
    _, sent = run(OrderState(ORDER), cmd("place", body))
    assert [c.body.backorder for c in sent] == [True, True]
    _, sent = run(OrderState(ORDER), PLACE)
    assert [c.body.backorder for c in sent] == [False, False]


def test_withdrawn_lines_are_taken_out_of_their_skus_queues():
    state, _ = run(OrderState(ORDER), PLACE, answer(1, LineAllocated(1, parts(1, "north"))),
                   answer(2, LineBackordered(2, 4)))
    assert state.status is OrderStatus.BACKORDERED
    state, sent = run(state, cmd("cancel", CancelOrder("too slow"), at=8))
    assert sent == [Command(f"release:{ORDER}:1:north", "A", 8, Release(f"{ORDER}:1:north"), ORDER_SENDER),
                    Command(f"unqueue:{ORDER}:2", "B", 8, CancelBackorder(ORDER, 2), ORDER_SENDER)]
    # Its SKU served it before the withdrawal arrived: the allocation is released at once.
    _, sent = run(state, answer(2, LineAllocated(2, parts(2, "east"))))
    assert sent == [Command(f"release:{ORDER}:2:east", "B", 2, Release(f"{ORDER}:2:east"), ORDER_SENDER)]


def test_a_line_backordered_after_its_order_was_rejected_is_withdrawn_at_once():
    state, _ = run(OrderState(ORDER), PLACE, answer(1, LineRejected(1, "INSUFFICIENT_STOCK")))
    _, sent = run(state, answer(2, LineBackordered(2, 1)))
    assert sent == [Command(f"unqueue:{ORDER}:2", "B", 2, CancelBackorder(ORDER, 2), ORDER_SENDER)]


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
    # The other order's allocation is announced again (its order ignores it by id).
    assert [(c.command_id, type(c.body)) for c in order_commands_for(command, [elsewhere])] == [
        ("allocated:o-9:1", LineAllocated), (f"allocated:{ORDER}:1", LineRejected)]
    queued_elsewhere = stock_event(Backordered("o-9", 1, 3, 1), command)
    assert [(c.command_id, type(c.body)) for c in order_commands_for(command, [queued_elsewhere])] == [
        ("backordered:o-9:1", LineBackordered), (f"allocated:{ORDER}:1", LineRejected)]


def test_other_stock_decisions_send_nothing_to_orders():
    reserve = Command("r", "A", 1, Reserve("r", ORDER, "north", 1))
    assert order_commands_for(reserve, [stock_event(Reserved("r", ORDER, 1), reserve)]) == []
    cancel = Command(f"unqueue:{ORDER}:1", "A", 1, CancelBackorder(ORDER, 1), ORDER_SENDER)
    refused = CommandRejected("CancelBackorder", RejectReason.OTHER, "not queued")
    assert order_commands_for(cancel, [stock_event(refused, cancel)]) == []


def test_a_queued_line_answers_the_order_with_its_place_in_the_queue():
    command = Command(f"allocate:{ORDER}:2", "A", 5, AllocateLine(ORDER, 2, 3, backorder=True), ORDER_SENDER)
    assert order_commands_for(command, [stock_event(Backordered(ORDER, 2, 3, 4), command)]) == [OrderCommand(
        f"backordered:{ORDER}:2", ORDER, 5, LineBackordered(2, 4), STOCK_SENDER)]


def test_a_receipt_that_serves_two_backorders_answers_both_orders():
    receipt = Command("receipt-1", "A", 9, AdjustStock("north", 5, "received"))
    served = [Allocated(order, 1, q, "priority", {"north": 5}, (AllocationPart("north", q, f"{order}:1:north"),))
              for order, q in (("o-7", 2), ("o-8", 3))]
    events = [stock_event(StockAdjusted(5, "received"), receipt),
              *(stock_event(body, receipt, i) for i, body in enumerate(served, start=1))]
    assert order_commands_for(receipt, events) == [
        OrderCommand(f"allocated:{order}:1", order, 9, LineAllocated(1, (Part("north", q, f"{order}:1:north"),)),
                     STOCK_SENDER)
        for order, q in (("o-7", 2), ("o-8", 3))]


def test_backorders_end_to_end_with_the_skus_own_stores():
    """Two orders queue at a SKU with no stock; a receipt serves the first, the second is
    cancelled (its queue entry withdrawn), and a later receipt is served to nobody."""
    stock = StockStore({})
    stock.handle(Command("setup", "A", 1, CreateProduct("A")))
    order = OrderStore({})

    def deliver(pending: list) -> None:
        while pending:
            command = pending.pop(0)
            if isinstance(command, OrderCommand):
                pending.extend(stock_commands_for(command, order.handle(command)))
            else:
                pending.extend(order_commands_for(command, stock.handle(command)))

    for oid, quantity in (("o-1", 2), ("o-2", 3)):
        deliver([OrderCommand(f"place-{oid}", oid, 2, PlaceOrder("alice", (OrderLine("A", quantity),),
                                                                    allow_backorders=True), "api")])
    assert [order.order(oid).status for oid in ("o-1", "o-2")] == [OrderStatus.BACKORDERED] * 2
    assert order.order("o-2").lines[0].state is LineState.BACKORDERED
    deliver([Command("receipt-1", "A", 3, AdjustStock("north", 4, "received", "hold-1"))])
    assert order.order("o-1").status is OrderStatus.RESERVED
    assert order.order("o-2").status is OrderStatus.BACKORDERED  # 2 left, 3 needed: it waits
    deliver([OrderCommand("cancel-o-2", "o-2", 4, CancelOrder("too slow"), "api")])
    assert order.order("o-2").status is OrderStatus.CANCELLED
    assert order.order("o-2").lines[0].state is LineState.WITHDRAWN
    assert stock.sku("A").backorders == ()
    deliver([Command("receipt-2", "A", 5, AdjustStock("north", 5, "received", "hold-2"))])
    assert stock.sku("A").level("north").reserved == 2 and stock.sku("A").level("north").on_hand == 9


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
ENDED = (OrderStatus.REJECTED, OrderStatus.CANCELLED)
warehouses = st.lists(st.sampled_from(("north", "south", "east")), unique=True, min_size=1, max_size=3)
# What a line's SKU does with it: reject it (None), allocate it from warehouses, or queue it
# (("queued", warehouses)) and allocate it from them if stock arrives before its withdrawal does.
line_answers = st.one_of(st.none(), warehouses, st.tuples(st.just("queued"), warehouses))
ACTIONS = ("answer",) * 4 + ("serve", "unqueue", "cancel", "fulfil", "redeliver", "redeliver")
actions = st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 100)), max_size=25)


class Saga:
    """One order's store and, as far as the order sees them, its lines' SKUs: each SKU's answers
    wait in a FIFO outbox (one producer, one partition of order-commands), ``queued`` are the
    lines waiting in their SKUs' queues, and every stock command the order sent is kept by id (a
    receiver would ignore a repeat)."""

    def __init__(self, lines: int, answers: list) -> None:
        self.store = OrderStore({}, window=8)
        self.sent: dict[str, Command] = {}
        self.handled: list[OrderCommand] = []
        self.answers = answers[:lines]
        self.outbox = {n: [self._answer(n)] for n in range(1, lines + 1)}
        self.queued = {n for n in self.outbox if isinstance(self.answers[n - 1], tuple)}
        self.unqueued: set[str] = set()  # the CancelBackorders their SKUs decided
        self.handle(cmd("place", PlaceOrder("alice", tuple(OrderLine(s, 2) for s in SKUS[:lines]),
                                            allow_backorders=bool(self.queued))))

    def _answer(self, line: int) -> OrderCommand:
        """The SKU's decision of the line's AllocateLine: the same one whenever it is delivered."""
        drawn = self.answers[line - 1]
        if drawn is None:
            return answer(line, LineRejected(line, "INSUFFICIENT_STOCK"))
        if isinstance(drawn, tuple):
            return answer(line, LineBackordered(line, line))
        return answer(line, LineAllocated(line, parts(line, *drawn)))

    def handle(self, command: OrderCommand) -> None:
        self.handled.append(command)
        for stock_command in stock_commands_for(command, self.store.handle(command)):
            previous = self.sent.setdefault(stock_command.command_id, stock_command)
            assert previous == stock_command, "one command id, two different commands"
        state = self.store.order(ORDER)
        if state.status in ENDED:
            assert all(line.state not in (LineState.ALLOCATED, LineState.BACKORDERED) for line in state.lines), state

    def deliver(self, line: int) -> None:
        """The next answer of ``line``'s SKU reaches the order, if one is on its way."""
        if self.outbox[line]:
            self.handle(self.outbox[line].pop(0))

    def serve(self, line: int) -> None:
        """Stock arrives at ``line``'s SKU: it allocates the line if the line still waits there."""
        if line in self.queued:
            self.queued.remove(line)
            self.outbox[line].append(answer(line, LineAllocated(line, parts(line, *self.answers[line - 1][1]))))

    def withdrawals(self) -> list[int]:
        """The lines whose CancelBackorder is on its way to their SKU."""
        return sorted(c.body.line for c in self.sent.values()
                      if isinstance(c.body, CancelBackorder) and c.command_id not in self.unqueued)

    def unqueue(self, line: int) -> None:
        """``line``'s CancelBackorder reaches its SKU: the line leaves the queue, or, served
        already, the command is rejected (which tells the order nothing)."""
        if line in self.withdrawals():
            self.unqueued.add(f"unqueue:{ORDER}:{line}")
            self.queued.discard(line)

    def ids(self, kind: type) -> set[str]:
        return {c.command_id for c in self.sent.values() if isinstance(c.body, kind)}


@settings(max_examples=500, deadline=None)
@given(st.integers(1, len(SKUS)), st.lists(line_answers, min_size=len(SKUS), max_size=len(SKUS)), actions,
       st.data())
def test_once_everything_is_delivered_nothing_stays_held_or_queued_and_every_part_is_settled_once(
        lines, answers, steps, data):
    saga = Saga(lines, answers)
    for step, (kind, n) in enumerate(steps):
        line = n % lines + 1
        if kind == "answer":
            saga.deliver(line)
        elif kind == "serve":
            saga.serve(line)
        elif kind == "unqueue":
            saga.unqueue(line)
        elif kind == "cancel":
            saga.handle(cmd(f"cancel-{step}", CancelOrder("changed my mind"), at=step))
        elif kind == "fulfil":
            saga.handle(cmd(f"fulfil-{step}", FulfilOrder(), at=step))
        else:  # a redelivery: any command seen before, with its own id
            saga.handle(saga.handled[n % len(saga.handled)])
    # Everything on its way is delivered, in any order; stock may still arrive meanwhile.
    while moves := ([("deliver", n) for n in saga.outbox if saga.outbox[n]]
                    + [("unqueue", n) for n in saga.withdrawals()]):
        kind, line = data.draw(st.sampled_from(moves + [("serve", n) for n in sorted(saga.queued)]))
        getattr(saga, kind)(line)

    state = saga.store.order(ORDER)
    states = {line.state for line in state.lines}
    numbers = {line.line for line in state.lines}
    if state.status in ENDED:
        assert states <= {LineState.RELEASED, LineState.REJECTED, LineState.WITHDRAWN}
        assert not saga.queued, "a line of an ended order still waits in its SKU's queue"
    elif state.status is OrderStatus.BACKORDERED:
        assert LineState.BACKORDERED in states and states <= {LineState.ALLOCATED, LineState.BACKORDERED}
        assert saga.queued == {line.line for line in state.lines if line.state is LineState.BACKORDERED}
    else:
        assert (state.status, states) in ((OrderStatus.RESERVED, {LineState.ALLOCATED}),
                                          (OrderStatus.FULFILLED, {LineState.COMMITTED}))
        assert not saga.queued
    if state.status not in ENDED:
        assert all(a is not None for a in saga.answers)
    if state.status is OrderStatus.REJECTED:
        assert any(a is None for a in saga.answers)

    def reservations(*line_states: LineState) -> set[str]:
        return {part.reservation_id for line in state.lines if line.state in line_states for part in line.parts}
    allocated = {p.reservation_id for c in saga.handled if isinstance(c.body, LineAllocated) for p in c.body.parts}
    assert allocated == reservations(LineState.ALLOCATED, LineState.RELEASED, LineState.COMMITTED)
    assert saga.ids(Release) == {f"release:{r}" for r in reservations(LineState.RELEASED)}
    assert saga.ids(Commit) == {f"commit:{r}" for r in reservations(LineState.COMMITTED)}
    assert saga.ids(AllocateLine) == {f"allocate:{ORDER}:{n}" for n in numbers}
    assert all(c.body.backorder is state.allow_backorders
               for c in saga.sent.values() if isinstance(c.body, AllocateLine))
    # A line is withdrawn once, only if its SKU queued it, and every line still WITHDRAWN was.
    withdrawn = {c.body.line for c in saga.sent.values() if isinstance(c.body, CancelBackorder)}
    assert saga.ids(CancelBackorder) == {f"unqueue:{ORDER}:{n}" for n in withdrawn}
    assert {line.line for line in state.lines if line.state is LineState.WITHDRAWN} <= withdrawn
    assert all(isinstance(saga.answers[n - 1], tuple) for n in withdrawn)
    line_of = {part.reservation_id: line for line in state.lines for part in line.parts}
    for command in saga.sent.values():
        if isinstance(command.body, (Release, Commit)):
            assert command.sku == line_of[command.body.reservation_id].sku
        if isinstance(command.body, CancelBackorder):
            assert command.sku == state.line(command.body.line).sku
