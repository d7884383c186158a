"""The stock decisions, as pure functions: no I/O, no clock, no randomness.

``decide(state, command) -> events`` says what happens; ``evolve(state, event) -> state`` applies
one fact. A SKU's state is the fold of its events, so a replay of the log decides the same way.
Rejections are facts too (they carry the reason), but they change nothing, not even ``seq``.

Low stock is a fact of the event that causes it: an event whose level leaves the available units
below the warehouse's threshold, when they were not below it before, carries ``low_stock`` (the
agent also publishes it as an alert).

An order line's ``AllocateLine`` decides several events: ``Allocated`` (the plan, which changes no
level), then one ``Reserved`` per warehouse of the plan, each decided on the state the one before
leaves (``streams/stock/allocation.py``); or one ``AllocationRejected``.

A line that cannot be served now may wait instead (``AllocateLine.backorder``): ``Backordered``
puts it at the tail of the SKU's FIFO queue. The queue is strict: while it is not empty a new line
(or a direct ``Reserve``) gets no stock, and every decision ends by serving the head, with the same ``Allocated`` and
``Reserved`` events as a line allocated at once, while it can be planned. So after any decision
the queue is empty or its head cannot be planned.

A pre-order holds units announced as incoming (``AnnounceIncoming``) when those available do
not cover it: on hand first, the rest ``awaiting`` on the warehouse's ``incoming`` units
(``preordered`` of them). A receipt into the warehouse turns awaiting units into ordinary reserved
ones, oldest hold first (one ``PreorderArrived`` per hold after its ``StockAdjusted``); a hold
still awaiting units cannot be committed. So ``reserved <= on_hand`` and ``preordered <=
incoming`` after every event.

Time is data here too: a reservation's deadline is its command's ``issued_at`` plus its TTL, and
it expires by an ``Expire`` whose ``issued_at`` is the time of a ``Tick`` read from the log.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from functools import reduce
from typing import Callable, Iterable, Mapping

from streams.stock.allocation import STRATEGIES, plan, reservation_id_for
from streams.stock.records import (
    AdjustStock,
    AnnounceIncoming,
    Awaiting,
    AllocateLine,
    Allocated,
    AllocationPart,
    AllocationRejected,
    ArriveTransfer,
    Backorder,
    BackorderCancelled,
    Backordered,
    CancelBackorder,
    Command,
    CommandRejected,
    Commit,
    Committed,
    CreateProduct,
    Event,
    EventBody,
    Expire,
    Expired,
    IncomingAnnounced,
    Level,
    LowStockThresholdSet,
    PreorderArrived,
    Product,
    ProductCreated,
    RejectReason,
    Release,
    Released,
    Reservation,
    ReservationRejected,
    ReservationState,
    Reserve,
    Reserved,
    SetLowStockThreshold,
    SkuState,
    StockAdjusted,
    TransferArrived,
    TransferredOut,
    TransferStock,
    event_id_for,
)

__all__ = ["decide", "evolve", "fold", "MAX_UNIT_COST"]


def _event(state: SkuState, command: Command, body: EventBody, warehouse: str,
           after: Level | None = None, index: int = 0) -> Event:
    """The ``index``-th event of ``command``; ``after`` is the warehouse level it leaves (None:
    unchanged)."""
    before = state.level(warehouse)
    changed = after is not None
    level = after if changed else before
    threshold = body.threshold if isinstance(body, LowStockThresholdSet) else state.threshold(warehouse)
    was_low = _is_low(before.available, state.threshold(warehouse))
    return Event(
        event_id=event_id_for(command.command_id, index),
        command_id=command.command_id,
        sku=state.sku,
        seq=state.seq + 1 if changed or isinstance(body, ProductCreated) else state.seq,
        occurred_at=command.issued_at,
        sender=command.sender,
        warehouse=warehouse,
        on_hand=level.on_hand,
        reserved=level.reserved,
        incoming=level.incoming,
        preordered=level.preordered,
        expected_at=level.expected_at,
        on_hand_delta=level.on_hand - before.on_hand,
        reserved_delta=level.reserved - before.reserved,
        body=body,
        low_stock_threshold=threshold,
        low_stock=_is_low(level.available, threshold) and not was_low,
    )


def _is_low(available: int, threshold: int) -> bool:
    return threshold > 0 and available < threshold


def _reject(state: SkuState, command: Command, reason: RejectReason, detail: str = "",
            warehouse: str = "", reservation_id: str = "") -> list[Event]:
    body = CommandRejected(type(command.body).__name__, reason, detail, reservation_id)
    return [_event(state, command, body, warehouse)]


def _create_product(state: SkuState, command: Command, body: CreateProduct) -> list[Event]:
    if state.product is not None:
        return _reject(state, command, RejectReason.PRODUCT_EXISTS, f"product {state.sku} exists")
    if not body.name.strip():
        return _reject(state, command, RejectReason.OTHER, "name must not be empty")
    if body.parent == state.sku:
        return _reject(state, command, RejectReason.OTHER, "a product cannot be its own variant")
    if state.sku in body.components or "" in body.components:
        return _reject(state, command, RejectReason.OTHER, "a bundle's components are other products")
    if any(units <= 0 for units in body.components.values()):
        return _reject(state, command, RejectReason.INVALID_QUANTITY,
                       "a bundle's component quantities must be positive")
    if problem := _unit_cost_problem(body):
        return _reject(state, command, RejectReason.OTHER, problem)
    created = ProductCreated(body.name, body.description, body.category, body.parent,
                             dict(body.attributes), dict(body.components), _four_places(body.unit_cost))
    return [_event(state, command, created, "")]


# The read model's NUMERIC(18, 4): 14 integer digits (Avro's decimal(18, 4) checks only the total).
MAX_UNIT_COST = Decimal("99999999999999.9999")
_COST_PLACES = Decimal("0.0001")


def _four_places(cost: Decimal | None) -> Decimal | None:
    """The cost with exactly 4 decimal places: Avro's decimal(18, 4) refuses another exponent."""
    return None if cost is None else cost.quantize(_COST_PLACES)


def _unit_cost_problem(body: CreateProduct) -> str:
    """Why ``body``'s unit cost is refused ("" if it is not). The API checks the same, so only a
    producer writing to the log directly meets these; a cost the sink could not store would stop it."""
    cost = body.unit_cost
    if cost is None:
        return ""
    if body.components:  # its units are its components': their costs value them
        return "a bundle has no unit cost of its own"
    if not cost.is_finite() or cost < 0 or cost > MAX_UNIT_COST:
        return f"unit cost must be between 0 and {MAX_UNIT_COST}"
    if cost != cost.quantize(_COST_PLACES):
        return "unit cost takes at most 4 decimal places"
    return ""


def _holds_no_stock(state: SkuState) -> str:
    """Why ``state``'s SKU cannot hold units ("" when it can): a bundle's are its components'."""
    if state.product is not None and state.product.is_bundle:
        return f"{state.sku} is a bundle: its units are held by its components"
    return ""


def _adjust_stock(state: SkuState, command: Command, body: AdjustStock) -> list[Event]:
    if state.product is None:
        return _reject(state, command, RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if bundle := _holds_no_stock(state):  # a receipt's space is released (streams/warehouses/saga.py)
        return _reject(state, command, RejectReason.BUNDLE_HOLDS_NO_STOCK, bundle, body.warehouse)
    if body.quantity == 0:
        return _reject(state, command, RejectReason.INVALID_QUANTITY, "quantity must not be 0",
                       body.warehouse)
    if not body.warehouse:
        return _reject(state, command, RejectReason.OTHER, "warehouse must not be empty")
    if body.quantity < 0 and body.hold_id:
        return _reject(state, command, RejectReason.OTHER, "only a receipt comes with a hold",
                       body.warehouse)
    if body.quantity > 0 and not body.hold_id:
        # Capacity is a hard limit: units come in only with space held in the warehouse's ledger
        # (a ReceiveStock on warehouse-commands, streams/warehouses/).
        return _reject(state, command, RejectReason.SPACE_NOT_HELD,
                       f"a receipt goes through warehouse {body.warehouse}'s capacity ledger",
                       body.warehouse)
    before = state.level(body.warehouse)
    if before.on_hand + body.quantity < before.reserved:
        # Stock held by reservations cannot be removed; only the available part can.
        detail = f"can remove at most {before.available}, asked {-body.quantity}"
        return _reject(state, command, RejectReason.INSUFFICIENT_STOCK, detail, body.warehouse)
    if body.quantity < 0:
        after = replace(before, on_hand=before.on_hand + body.quantity)
        return [_event(state, command, StockAdjusted(body.quantity, body.reason), body.warehouse, after)]
    return _receive(state, command, body)


def _receive(state: SkuState, command: Command, body: AdjustStock) -> list[Event]:
    """A receipt: its units arrive for the pre-orders first (as many as it brings), then the
    rest of the incoming units announced, then any more are just stock."""
    before = state.level(body.warehouse)
    arrived = min(body.quantity, before.incoming)
    for_preorders = min(body.quantity, before.preordered)
    # The pre-ordered units stay incoming until their PreorderArrived: preordered <= incoming.
    after = _incoming(before, on_hand=before.on_hand + body.quantity,
                      incoming=before.incoming - arrived + for_preorders)
    events = [_event(state, command, StockAdjusted(body.quantity, body.reason), body.warehouse, after)]
    return events + _arrive(fold(state, events), command, body.warehouse, for_preorders, len(events))


def _incoming(before: Level, **changes: int) -> Level:
    """``before`` changed; a warehouse with no incoming units left expects none."""
    after = replace(before, **changes)
    return after if after.incoming else replace(after, expected_at=0)


def _arrive(state: SkuState, command: Command, warehouse: str, units: int, index: int) -> list[Event]:
    """``units`` of the warehouse's pre-orders arrived: holds awaiting units there, oldest first,
    take them, each its ``PreorderArrived``, the ``index``-th event of ``command`` on."""
    events: list[Event] = []
    for waiting in [a for a in state.awaiting if a.warehouse == warehouse]:
        if units == 0:
            break
        take = min(units, waiting.units)
        units -= take
        before = state.level(warehouse)
        after = _incoming(before, reserved=before.reserved + take, preordered=before.preordered - take,
                          incoming=before.incoming - take)
        fact = PreorderArrived(waiting.reservation_id, waiting.order_id, take, waiting.units - take)
        events.append(_event(state, command, fact, warehouse, after, index + len(events)))
        state = evolve(state, events[-1])
    return events


def _announce(state: SkuState, command: Command, body: AnnounceIncoming) -> list[Event]:
    if state.product is None:
        return _reject(state, command, RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if bundle := _holds_no_stock(state):
        return _reject(state, command, RejectReason.BUNDLE_HOLDS_NO_STOCK, bundle, body.warehouse)
    if not body.warehouse:
        return _reject(state, command, RejectReason.OTHER, "warehouse must not be empty")
    if body.quantity == 0:
        return _reject(state, command, RejectReason.INVALID_QUANTITY, "quantity must not be 0",
                       body.warehouse)
    if body.quantity > 0 and body.expected_at <= 0:
        return _reject(state, command, RejectReason.OTHER, "incoming units need an expected date",
                       body.warehouse)
    before = state.level(body.warehouse)
    if before.incoming + body.quantity < before.preordered:
        return _reject(state, command, RejectReason.INSUFFICIENT_STOCK,
                       f"can withdraw at most {before.preorderable} incoming units: {before.preordered} "
                       f"are pre-ordered", body.warehouse)
    # One date per warehouse: the latest announced, so every unit announced is expected by then.
    expected_at = max(before.expected_at, body.expected_at) if body.quantity > 0 else before.expected_at
    after = _incoming(before, incoming=before.incoming + body.quantity, expected_at=expected_at)
    fact = IncomingAnnounced(body.quantity, body.expected_at)
    return [_event(state, command, fact, body.warehouse, after)]


def _set_threshold(state: SkuState, command: Command, body: SetLowStockThreshold) -> list[Event]:
    if state.product is None:
        return _reject(state, command, RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if not body.warehouse:
        return _reject(state, command, RejectReason.OTHER, "warehouse must not be empty")
    if body.threshold < 0:
        return _reject(state, command, RejectReason.INVALID_QUANTITY, "threshold must not be negative",
                       body.warehouse)
    level = state.level(body.warehouse)  # unchanged, but the SKU's state is: a new version
    return [_event(state, command, LowStockThresholdSet(body.threshold), body.warehouse, level)]


def _reserve(state: SkuState, command: Command, body: Reserve) -> list[Event]:
    def rejected(reason: RejectReason, detail: str) -> list[Event]:
        fact = ReservationRejected(body.reservation_id, body.order_id, body.quantity, reason, detail)
        return [_event(state, command, fact, body.warehouse)]

    if state.product is None:
        return rejected(RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if bundle := _holds_no_stock(state):
        return rejected(RejectReason.BUNDLE_HOLDS_NO_STOCK, bundle)
    if body.quantity <= 0:
        return rejected(RejectReason.INVALID_QUANTITY, "quantity must be positive")
    if not body.warehouse:
        return rejected(RejectReason.OTHER, "warehouse must not be empty")
    if body.reservation_id in state.reservations:
        return rejected(RejectReason.RESERVATION_EXISTS, f"reservation {body.reservation_id} exists")
    if queued := [b for b in state.backorders if body.reservation_id.startswith(_parts_prefix(b))]:
        # The queued line will hold it when served: taken now, it would be held twice.
        return rejected(RejectReason.RESERVATION_EXISTS,
                        f"reservation {body.reservation_id} is kept for queued line {queued[0].line} "
                        f"of order {queued[0].order_id}")
    before = state.level(body.warehouse)
    if body.ttl_ms < 0:
        return rejected(RejectReason.OTHER, "ttl must not be negative")
    if state.backorders:  # strict FIFO binds direct reservations too: else they starve the head
        return rejected(RejectReason.INSUFFICIENT_STOCK,
                        f"the units available are promised to {len(state.backorders)} waiting backorders first")
    coverable = before.available + (before.preorderable if body.preorder else 0)
    if coverable < body.quantity:
        incoming = f" and {before.preorderable} incoming" if body.preorder else ""
        return rejected(RejectReason.INSUFFICIENT_STOCK,
                        f"available {before.available}{incoming}, asked {body.quantity}")
    expires_at = command.issued_at + body.ttl_ms if body.ttl_ms else 0
    return [_held(state, command, body.reservation_id, body.order_id, body.warehouse, body.quantity,
                  expires_at)]


def _held(state: SkuState, command: Command, reservation_id: str, order_id: str, warehouse: str,
          quantity: int, expires_at: int, index: int = 0) -> Event:
    """The ``Reserved`` of ``quantity`` units in ``warehouse``: on hand first, the rest (a
    pre-order's) awaiting its incoming units. The caller made sure they cover it."""
    before = state.level(warehouse)
    awaiting = max(0, quantity - before.available)
    after = replace(before, reserved=before.reserved + quantity - awaiting,
                    preordered=before.preordered + awaiting)
    fact = Reserved(reservation_id, order_id, quantity, expires_at=expires_at, awaiting=awaiting)
    return _event(state, command, fact, warehouse, after, index)


def _end_reservation(state: SkuState, command: Command, body: Release | Commit | Expire) -> list[Event]:
    held = state.reservations.get(body.reservation_id)
    if held is None:
        return _reject(state, command, RejectReason.UNKNOWN_RESERVATION,
                       f"no reservation {body.reservation_id} for {state.sku}",
                       reservation_id=body.reservation_id)
    if held.state is not ReservationState.PENDING:
        return _reject(state, command, RejectReason.RESERVATION_NOT_PENDING,
                       f"reservation {held.reservation_id} is {held.state}", held.warehouse,
                       held.reservation_id)
    due = held.expires_at and held.expires_at <= command.issued_at
    if isinstance(body, Expire) and not due:
        return _reject(state, command, RejectReason.OTHER,
                       f"reservation {held.reservation_id} is not due", held.warehouse,
                       held.reservation_id)
    if isinstance(body, Commit) and due:
        # Too late to fulfil: the units are promised back; the next tick expires it.
        return _reject(state, command, RejectReason.RESERVATION_EXPIRED,
                       f"reservation {held.reservation_id} expired at {held.expires_at}",
                       held.warehouse, held.reservation_id)
    awaiting = _awaiting(state, held.reservation_id)
    before = state.level(held.warehouse)
    if isinstance(body, Commit) and awaiting:
        return _reject(state, command, RejectReason.PREORDER_NOT_ARRIVED,
                       f"{awaiting} units of reservation {held.reservation_id} have not arrived "
                       f"(expected at {before.expected_at})", held.warehouse, held.reservation_id)
    if isinstance(body, Commit):  # fulfilled: the held units leave the warehouse
        after = replace(before, on_hand=before.on_hand - held.quantity, reserved=before.reserved - held.quantity)
        fact: EventBody = Committed(held.reservation_id, held.order_id, held.quantity)
    else:  # released or expired: the held units are available again, or pre-orderable
        after = replace(before, reserved=before.reserved - (held.quantity - awaiting),
                        preordered=before.preordered - awaiting)
        ended = Expired if isinstance(body, Expire) else Released
        fact = ended(held.reservation_id, held.order_id, held.quantity)
    return [_event(state, command, fact, held.warehouse, after)]


def _awaiting(state: SkuState, reservation_id: str) -> int:
    return sum(a.units for a in state.awaiting if a.reservation_id == reservation_id)


def _seen(state: SkuState) -> dict[str, int]:
    """The units available per warehouse, by name: what a line's plan is made on (and records)."""
    return {wh: level.available for wh, level in sorted(state.levels.items())}


def _incoming_seen(state: SkuState) -> dict[str, int]:
    """The incoming units not pre-ordered yet per warehouse: what a pre-order's plan may add."""
    return {wh: level.preorderable for wh, level in sorted(state.levels.items()) if level.preorderable > 0}


def _plan_line(state: SkuState, line: AllocateLine | Backorder) -> tuple[list[tuple[str, int]] | None, dict[str, int]]:
    """The line's plan, and the incoming units it was made on ({}: on available units only).
    A pre-order takes every unit available first, then the rest from incoming units, so as few
    of its units as possible wait."""
    seen = _seen(state)
    planned = plan(seen, line.quantity, line.preferred_warehouse, line.strategy, line.priority)
    if planned is not None or not line.preorder:
        return planned, {}
    incoming = _incoming_seen(state)
    on_hand = sum(seen.values())
    rest = plan(incoming, line.quantity - on_hand, line.preferred_warehouse, line.strategy, line.priority)
    if rest is None:
        return None, incoming
    first = plan(seen, on_hand, line.preferred_warehouse, line.strategy, line.priority) if on_hand else []
    merged: dict[str, int] = {}
    for warehouse, units in [*first, *rest]:
        merged[warehouse] = merged.get(warehouse, 0) + units
    return list(merged.items()), incoming


def _allocate_line(state: SkuState, command: Command, body: AllocateLine) -> list[Event]:
    seen = _seen(state)

    def rejected(reason: RejectReason, detail: str) -> list[Event]:
        fact = AllocationRejected(body.order_id, body.line, body.quantity, reason, detail,
                                  body.strategy, seen)
        return [_event(state, command, fact, "")]

    if state.product is None:
        return rejected(RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if bundle := _holds_no_stock(state):  # the API orders a bundle's components instead
        return rejected(RejectReason.BUNDLE_HOLDS_NO_STOCK, bundle)
    if body.quantity <= 0:
        return rejected(RejectReason.INVALID_QUANTITY, "quantity must be positive")
    if body.strategy not in STRATEGIES:
        return rejected(RejectReason.OTHER, f"unknown strategy {body.strategy!r}")
    if body.ttl_ms < 0:
        return rejected(RejectReason.OTHER, "ttl must not be negative")
    # Strict FIFO: while lines wait, the units available are theirs, whatever this line needs.
    waiting = len(state.backorders)
    planned, incoming = (None, {}) if waiting else _plan_line(state, body)
    if planned is None and body.backorder:
        return _queue(state, command, body, rejected)
    if waiting:
        return rejected(RejectReason.INSUFFICIENT_STOCK,
                        f"the units available are promised to {waiting} waiting backorders first")
    if planned is None:
        preorderable = f" and {sum(_incoming_seen(state).values())} incoming" if body.preorder else ""
        return rejected(RejectReason.INSUFFICIENT_STOCK,
                        f"available {sum(seen.values())}{preorderable} in all warehouses, asked {body.quantity}")
    taken = [rid for wh, _ in planned
             if (rid := reservation_id_for(body.order_id, body.line, wh)) in state.reservations]
    if taken:  # the line was allocated before (its command fell out of the dedup window)
        return rejected(RejectReason.RESERVATION_EXISTS, f"reservation {taken[0]} exists")
    return _hold(state, command, body, planned, incoming)


def _hold(state: SkuState, command: Command, line: AllocateLine | Backorder, planned: list[tuple[str, int]],
          incoming: Mapping[str, int], index: int = 0) -> list[Event]:
    """A line's plan as facts, the ``index``-th event of ``command`` on: ``Allocated``, then one
    ``Reserved`` per part, each decided on the state the one before leaves. One function for a
    line allocated at once and a backorder served later, so both are held the same way."""
    parts = tuple(AllocationPart(wh, units, reservation_id_for(line.order_id, line.line, wh),
                                 max(0, units - state.level(wh).available))
                  for wh, units in planned)
    fact = Allocated(line.order_id, line.line, line.quantity, line.strategy, _seen(state), parts, incoming)
    events = [_event(state, command, fact, "", index=index)]
    expires_at = command.issued_at + line.ttl_ms if line.ttl_ms else 0
    for offset, part in enumerate(parts, start=1):
        events.append(_held(state, command, part.reservation_id, line.order_id, part.warehouse,
                            part.quantity, expires_at, index + offset))
        state = evolve(state, events[-1])
    return events


def _queue(state: SkuState, command: Command, body: AllocateLine,
           rejected: Callable[[RejectReason, str], list[Event]]) -> list[Event]:
    """Put a line that cannot (or may not) be served now at the queue's tail. A line queued or
    held already (its command fell out of the dedup window) is refused: it must not wait twice."""
    if any((b.order_id, b.line) == (body.order_id, body.line) for b in state.backorders):
        return rejected(RejectReason.OTHER, f"line {body.line} of order {body.order_id} is queued already")
    held = sorted(rid for rid in state.reservations if rid.startswith(_parts_prefix(body)))
    if held:
        return rejected(RejectReason.RESERVATION_EXISTS, f"reservation {held[0]} exists")
    fact = Backordered(body.order_id, body.line, body.quantity, len(state.backorders) + 1,
                       body.preferred_warehouse, body.strategy, body.priority, body.ttl_ms, body.preorder)
    return [_event(state, command, fact, "")]


def _parts_prefix(line: AllocateLine | Backorder) -> str:
    """What the ids of a line's parts start with, whatever their warehouse: a served backorder
    holds new reservations, so none may exist when it is queued, nor be taken while it waits."""
    return reservation_id_for(line.order_id, line.line, "")


def _cancel_backorder(state: SkuState, command: Command, body: CancelBackorder) -> list[Event]:
    """Withdraw a queued line. One that is not queued was served already (or never queued): the
    order releases what it holds when its allocation arrives."""
    queued = [b for b in state.backorders if (b.order_id, b.line) == (body.order_id, body.line)]
    if not queued:
        return _reject(state, command, RejectReason.OTHER,
                       f"line {body.line} of order {body.order_id} is not queued for {state.sku}")
    return [_event(state, command, BackorderCancelled(body.order_id, body.line, queued[0].quantity), "")]


def _serve(state: SkuState, command: Command, index: int) -> list[Event]:
    """Hold the queue's head while it can be planned, the ``index``-th event of ``command`` on.
    A head that cannot be served stops the queue: no line is served before one that waited
    longer, so a big line is not starved by small ones behind it."""
    events: list[Event] = []
    while state.backorders:
        planned, incoming = _plan_line(state, state.backorders[0])
        if planned is None:
            break
        held = _hold(state, command, state.backorders[0], planned, incoming, index + len(events))
        events.extend(held)
        state = fold(state, held)
    return events


def _transfer_out(state: SkuState, command: Command, body: TransferStock) -> list[Event]:
    """Units leave the source for the destination (whose space is held): in transit until
    they arrive. The command id is the transfer's."""
    if state.product is None:
        return _reject(state, command, RejectReason.UNKNOWN_PRODUCT, f"no product {state.sku}")
    if bundle := _holds_no_stock(state):
        return _reject(state, command, RejectReason.BUNDLE_HOLDS_NO_STOCK, bundle, body.source)
    if body.quantity <= 0:
        return _reject(state, command, RejectReason.INVALID_QUANTITY, "quantity must be positive",
                       body.source)
    if not body.source or body.source == body.destination:
        return _reject(state, command, RejectReason.OTHER, "a transfer goes from one warehouse to another",
                       body.source)
    if command.command_id in state.in_transit:
        return _reject(state, command, RejectReason.OTHER, f"transfer {command.command_id} is on its way",
                       body.source)
    before = state.level(body.source)
    if before.available < body.quantity:
        return _reject(state, command, RejectReason.INSUFFICIENT_STOCK,
                       f"available {before.available} in {body.source}, asked {body.quantity}", body.source)
    after = replace(before, on_hand=before.on_hand - body.quantity)
    fact = TransferredOut(command.command_id, body.destination, body.quantity)
    return [_event(state, command, fact, body.source, after)]


def _transfer_in(state: SkuState, command: Command, body: ArriveTransfer) -> list[Event]:
    moving = state.in_transit.get(body.transfer_id)
    if moving is None:
        return _reject(state, command, RejectReason.OTHER, f"no transfer {body.transfer_id} on its way")
    source, destination, quantity = moving
    before = state.level(destination)
    after = replace(before, on_hand=before.on_hand + quantity)
    return [_event(state, command, TransferArrived(body.transfer_id, source, quantity), destination, after)]


_DECIDERS: dict[type, Callable[[SkuState, Command, object], list[Event]]] = {
    CreateProduct: _create_product,
    AdjustStock: _adjust_stock,
    Reserve: _reserve,
    Release: _end_reservation,
    Commit: _end_reservation,
    Expire: _end_reservation,
    SetLowStockThreshold: _set_threshold,
    AllocateLine: _allocate_line,
    TransferStock: _transfer_out,
    ArriveTransfer: _transfer_in,
    CancelBackorder: _cancel_backorder,
    AnnounceIncoming: _announce,
}


def decide(state: SkuState, command: Command) -> list[Event]:
    """The events ``command`` causes on ``state`` (always at least one: an outcome or a rejection),
    then those of the backorders the state it leaves can serve (any decision may free units)."""
    if command.sku != state.sku:
        raise ValueError(f"command for {command.sku} decided on state of {state.sku}")
    events = _DECIDERS[type(command.body)](state, command, command.body)
    if not state.backorders:  # a line this command queued could not be planned: nothing to serve
        return events
    return events + _serve(fold(state, events), command, len(events))


def evolve(state: SkuState, event: Event) -> SkuState:
    """``state`` after the fact ``event``."""
    body = event.body
    if event.is_rejection:
        return state
    if isinstance(body, (Allocated, Backordered, BackorderCancelled)):  # the queue only: Reserved hold
        return replace(state, backorders=_backorders(state.backorders, body))
    if isinstance(body, ProductCreated):
        product = Product(body.name, body.description, body.category, body.parent, body.attributes,
                          body.components, body.unit_cost)
        return replace(state, product=product, seq=event.seq)
    levels = {**state.levels, event.warehouse: event.level}
    reservations = state.reservations
    if isinstance(body, Reserved):
        held = Reservation(body.reservation_id, body.order_id, state.sku, event.warehouse,
                           body.quantity, body.state, body.expires_at)
        reservations = {**state.reservations, body.reservation_id: held}
    elif isinstance(body, (Released, Committed, Expired)):
        before = state.reservations.get(body.reservation_id)
        held = Reservation(body.reservation_id, body.order_id, state.sku, event.warehouse,
                           body.quantity, body.state, before.expires_at if before else 0)
        reservations = {**state.reservations, body.reservation_id: held}
    thresholds = state.thresholds
    if isinstance(body, LowStockThresholdSet):
        thresholds = {**thresholds, event.warehouse: body.threshold}
    return replace(state, levels=levels, reservations=reservations, seq=event.seq, thresholds=thresholds,
                   in_transit=_in_transit(state, event), awaiting=_still_awaiting(state, event))


def _still_awaiting(state: SkuState, event: Event) -> tuple[Awaiting, ...]:
    """The pre-orders' units still to arrive after ``event``: a pre-order's hold adds its
    own at the tail; an arrival takes some; a hold that ends takes its own away."""
    body = event.body
    if isinstance(body, Reserved) and body.awaiting:
        return (*state.awaiting, Awaiting(body.reservation_id, body.order_id, event.warehouse, body.awaiting))
    if isinstance(body, PreorderArrived):
        return tuple(replace(a, units=body.awaiting) if a.reservation_id == body.reservation_id else a
                     for a in state.awaiting if a.reservation_id != body.reservation_id or body.awaiting)
    if isinstance(body, (Released, Committed, Expired)):
        return tuple(a for a in state.awaiting if a.reservation_id != body.reservation_id)
    return state.awaiting


def _in_transit(state: SkuState, event: Event) -> Mapping[str, tuple[str, str, int]]:
    body = event.body
    if isinstance(body, TransferredOut):
        return {**state.in_transit, body.transfer_id: (event.warehouse, body.destination, body.quantity)}
    if isinstance(body, TransferArrived):
        return {k: v for k, v in state.in_transit.items() if k != body.transfer_id}
    return state.in_transit


def _backorders(queue: tuple[Backorder, ...],
                body: Allocated | Backordered | BackorderCancelled) -> tuple[Backorder, ...]:
    """The queue after ``body``: a line queued at the tail, or withdrawn, or served (an
    ``Allocated`` of the head pops it; any other is of a line allocated at once, the queue empty)."""
    if isinstance(body, Backordered):
        return (*queue, Backorder(body.order_id, body.line, body.quantity, body.preferred_warehouse,
                                  body.strategy, body.priority, body.ttl_ms, body.preorder))
    if isinstance(body, BackorderCancelled):
        return tuple(b for b in queue if (b.order_id, b.line) != (body.order_id, body.line))
    if queue and (queue[0].order_id, queue[0].line) == (body.order_id, body.line):
        return queue[1:]
    return queue


def fold(state: SkuState, events: Iterable[Event]) -> SkuState:
    return reduce(evolve, events, state)
