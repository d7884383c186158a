"""The receipt saga between the capacity ledger and the SKUs' owners: each step, then the whole."""
from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock import logic as stock
from streams.stock.records import (
    AdjustStock, AllocateLine, Command, Commit, CreateProduct, Expire, Release, Reserve, SkuState,
)
from streams.stock.store import StockStore
from streams.warehouses import logic as ledger
from streams.warehouses.records import (
    ConfirmSpace, CreateWarehouse, FreeSpace, ReceiveStock, ReleaseSpace, WarehouseCommand,
    WarehouseState,
)
from streams.warehouses.saga import STOCK_SENDER, receipts_for, space_commands_for
from streams.warehouses.store import WarehouseStore

WH, SKU = "north", "SKU-1"


def warehouse(capacity: int = 10) -> WarehouseState:
    create = WarehouseCommand("create", WH, 1, CreateWarehouse("North", "Leeds", capacity))
    return ledger.fold(WarehouseState(WH), ledger.decide(WarehouseState(WH), create))


def sku(*bodies) -> SkuState:
    """A SKU that exists, after ``bodies`` (removals and reservations need stock: a receipt first)."""
    state = SkuState(SKU)
    for i, body in enumerate((CreateProduct("Shirt"), AdjustStock(WH, 10, "in", "h0"), *bodies)):
        state = stock.fold(state, stock.decide(state, Command(f"setup-{i}", SKU, 1, body)))
    return state


def receipt(quantity: int) -> WarehouseCommand:
    return WarehouseCommand("rcpt-1", WH, 5, ReceiveStock(SKU, quantity, "delivery"), "erp")


def decided(state: SkuState, command: Command) -> tuple[Command, list]:
    return command, stock.decide(state, command)


# ------------------------------------------------------------------------------ receipts_for
def test_space_held_sends_the_receipt_to_the_sku_with_the_hold_as_its_id_and_sender():
    command = receipt(4)
    assert receipts_for(command, ledger.decide(warehouse(), command)) == [
        Command("rcpt-1", SKU, 5, AdjustStock(WH, 4, "delivery", hold_id="rcpt-1"), "erp")]


def test_a_refused_receipt_or_any_other_ledger_fact_sends_nothing():
    full = receipt(11)
    assert receipts_for(full, ledger.decide(warehouse(), full)) == []
    created = WarehouseCommand("create", WH, 1, CreateWarehouse("North", "Leeds", 5))
    assert receipts_for(created, ledger.decide(WarehouseState(WH), created)) == []
    state = ledger.fold(warehouse(), ledger.decide(warehouse(), receipt(4)))
    confirm = WarehouseCommand("settle:rcpt-1", WH, 6, ConfirmSpace("rcpt-1"), STOCK_SENDER)
    assert receipts_for(confirm, ledger.decide(state, confirm)) == []


# ------------------------------------------------------------------------ space_commands_for
def settle(body) -> list[WarehouseCommand]:
    return [WarehouseCommand("settle:rcpt-1", WH, 5, body, STOCK_SENDER)]


def test_an_accepted_receipt_confirms_its_hold_and_a_refused_one_releases_it():
    arriving = Command("rcpt-1", SKU, 5, AdjustStock(WH, 4, "delivery", "rcpt-1"), "erp")
    assert space_commands_for(*decided(sku(), arriving)) == settle(ConfirmSpace("rcpt-1"))
    assert space_commands_for(*decided(SkuState(SKU), arriving)) == settle(ReleaseSpace("rcpt-1"))


def test_a_receipt_answered_with_another_commands_remembered_event_releases_its_space():
    """A client reused a command id: the SKU answers with what that id did before (a receipt
    into another warehouse), so these units did not come in and their space is given back."""
    store = StockStore({})
    store.handle(Command("create", SKU, 1, CreateProduct("Shirt")))
    store.handle(Command("reused", SKU, 2, AdjustStock("south", 4, "delivery", "reused")))
    again = Command("reused", SKU, 3, AdjustStock(WH, 4, "delivery", "reused"))
    assert space_commands_for(again, store.handle(again)) == [
        WarehouseCommand("settle:reused", WH, 3, ReleaseSpace("reused"), STOCK_SENDER)]


def test_a_removal_that_names_a_hold_is_refused_and_settles_nothing():
    removal = Command("out", SKU, 7, AdjustStock(WH, -3, "damaged", hold_id="someone-elses-hold"))
    command, [event] = decided(sku(), removal)
    assert event.is_rejection and event.on_hand_delta == 0
    assert space_commands_for(command, [event]) == [], "another receipt's hold is not its to settle"


def test_units_that_leave_free_their_space_under_the_id_of_their_event():
    for command, events in (decided(sku(), Command("out", SKU, 7, AdjustStock(WH, -3, "damaged"))),
                            decided(sku(Reserve("res", "o", WH, 3)), Command("c", SKU, 7, Commit("res")))):
        [event] = events
        assert space_commands_for(command, events) == [
            WarehouseCommand(f"free:{event.event_id}", WH, 7, FreeSpace(SKU, 3), STOCK_SENDER)]


def test_reserving_releasing_expiring_and_refused_movements_send_nothing():
    reserved = sku(Reserve("res", "o", WH, 3, ttl_ms=5))
    for state, body, outcome in ((sku(), Reserve("res", "o", WH, 3), "Reserved"),
                                 (reserved, Release("res"), "Released"),
                                 (reserved, Expire("res"), "Expired"),
                                 (reserved, AdjustStock(WH, -8, "lost"), "CommandRejected"),
                                 (sku(), AdjustStock(WH, 5, "no hold"), "CommandRejected")):
        command, events = decided(state, Command("x", SKU, 100, body))
        assert [e.type for e in events] == [outcome]
        assert space_commands_for(command, events) == [], body


# ------------------------------------------------------------------------- the whole saga
SKUS = ("A", "B", "GHOST")  # GHOST is never created: its receipts are refused, their space released
RESERVATIONS = ("r1", "r2")
# What a step does, weighted: clients' commands, a retry of one, deliveries of follow-ups, and a
# channel's redelivery of its last few follow-ups (as after a crash before an offset commit).
KINDS = (("receive",) * 3 + ("deliver",) * 5 + ("reserve", "commit") * 2
         + ("remove", "release", "retry", "rewind"))
actions = st.tuples(st.sampled_from(KINDS), st.sampled_from(SKUS), st.integers(0, 8),
                    st.sampled_from(RESERVATIONS), st.integers(0, 50))


class Channel:
    """The follow-ups from one sender to one receiver, in order; a rewind redelivers a suffix."""

    def __init__(self) -> None:
        self.log: list = []
        self.offset = 0

    @property
    def pending(self) -> bool:
        return self.offset < len(self.log)


class Saga:
    """One ledger and the SKUs' owners (their stores), with a channel per (sender, receiver) pair."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ledger = WarehouseStore({})
        self.stock = StockStore({})
        self.channels: dict[tuple[str, str], Channel] = {}
        self.sent: list = []  # the clients' commands, for retries
        self.applied: Counter = Counter()  # (receiver, command id) -> how often it changed a state
        self.client(WarehouseCommand("create", WH, 0, CreateWarehouse("North", "Leeds", capacity), "api"))
        for s in SKUS[:-1]:
            self.client(Command(f"create-{s}", s, 0, CreateProduct(s), "api"))

    def client(self, command) -> None:
        self.sent.append(command)
        self.handle(command)

    def handle(self, command) -> None:
        """Decide ``command`` at its receiver and send the decision's follow-ups (an outbox)."""
        if isinstance(command, WarehouseCommand):
            before = self.ledger.ledger(WH)
            events = self.ledger.handle(command)
            changed = self.ledger.ledger(WH) != before
            for receipt in receipts_for(command, events):
                self.channels.setdefault(("ledger", receipt.sku), Channel()).log.append(receipt)
        else:
            before = self.stock.sku(command.sku)
            events = self.stock.handle(command)
            changed = self.stock.sku(command.sku) != before
            for follow_up in space_commands_for(command, events):
                self.channels.setdefault((command.sku, "ledger"), Channel()).log.append(follow_up)
        self.applied[type(command).__name__, command.command_id] += changed

    def act(self, step: int, action: tuple) -> None:
        kind, s, quantity, rid, n = action
        if kind == "receive":
            self.client(WarehouseCommand(f"rcv-{step}", WH, step, ReceiveStock(s, quantity, "in"), "api"))
        elif kind == "remove":
            self.client(Command(f"out-{step}", s, step, AdjustStock(WH, -(quantity // 2 + 1), "out"), "api"))
        elif kind == "reserve":
            self.client(Command(f"res-{step}", s, step, Reserve(rid, "o", WH, quantity // 2 + 1), "api"))
        elif kind in ("commit", "release"):
            body = Commit(rid) if kind == "commit" else Release(rid)
            self.client(Command(f"{kind}-{step}", s, step, body, "api"))
        elif kind == "retry":
            self.handle(self.sent[n % len(self.sent)])
        elif kind == "rewind" and self.channels:
            channel = self.channels[sorted(self.channels)[n % len(self.channels)]]
            channel.offset = max(0, channel.offset - quantity // 3 - 1)
        elif kind == "deliver" and (pending := self.pending()):
            self.deliver(pending[n % len(pending)])

    def pending(self) -> list[tuple[str, str]]:
        return sorted(key for key, channel in self.channels.items() if channel.pending)

    def deliver(self, key: tuple[str, str]) -> None:
        channel = self.channels[key]
        channel.offset += 1
        self.handle(channel.log[channel.offset - 1])

    def on_hand(self) -> int:
        return sum(self.stock.sku(s).level(WH).on_hand for s in SKUS)

    def check(self) -> None:
        state = self.ledger.ledger(WH)
        assert 0 <= state.stored and 0 <= state.held
        assert state.stored + state.held <= self.capacity
        # The units in the warehouse never exceed the space the ledger counts as taken.
        assert self.on_hand() <= state.stored + state.held, (self.on_hand(), state)
        twice = [key for key, n in self.applied.items() if n > 1]
        assert not twice, f"applied more than once: {twice}"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20), st.lists(actions, min_size=10, max_size=60), st.data())
def test_the_saga_keeps_capacity_applies_each_receipt_once_and_settles(capacity, steps, data):
    saga = Saga(capacity)
    for step, action in enumerate(steps, start=1):
        saga.act(step, action)
        saga.check()
    while pending := saga.pending():  # the rest of the follow-ups, in a random interleaving
        saga.deliver(data.draw(st.sampled_from(pending), label="next delivery"))
        saga.check()
    state = saga.ledger.ledger(WH)
    assert (state.held, state.stored) == (0, saga.on_hand())


def test_a_receipt_counts_as_held_until_its_confirmation_arrives_once():
    saga = Saga(10)
    saga.act(1, ("receive", "A", 4, "r1", 0))
    saga.deliver(("ledger", "A"))  # the receipt: A has 4 units on hand
    saga.check()
    assert (saga.ledger.ledger(WH).held, saga.ledger.ledger(WH).stored, saga.on_hand()) == (4, 0, 4)
    saga.deliver(("A", "ledger"))  # its confirmation
    saga.channels["A", "ledger"].offset = 0  # and again
    saga.deliver(("A", "ledger"))
    assert (saga.ledger.ledger(WH).held, saga.ledger.ledger(WH).stored) == (0, 4)


def test_a_receipt_that_also_serves_a_backorder_settles_its_hold_once():
    """The receipt's decision holds the queued line too (Allocated, Reserved): one settlement."""
    store = StockStore({})
    store.handle(Command("create", SKU, 1, CreateProduct("Shirt")))
    store.handle(Command("allocate:o:1", SKU, 2, AllocateLine("o", 1, 2, backorder=True)))
    receipt = Command("rcpt-1", SKU, 3, AdjustStock(WH, 3, "delivery", "rcpt-1"))
    events = store.handle(receipt)
    assert [type(e.body).__name__ for e in events] == ["StockAdjusted", "Allocated", "Reserved"]
    assert space_commands_for(receipt, events) == [
        WarehouseCommand("settle:rcpt-1", WH, 3, ConfirmSpace("rcpt-1"), STOCK_SENDER)]
