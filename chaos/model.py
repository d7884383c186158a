"""A sequential model of each SKU, to check a chaos run's log of decisions and its history.

Independent of the production logic on purpose (a second, small implementation of the rules of
``streams/stock/logic.py``): every decision in the log, taken in log order per SKU, must be what
the model decides for that command in that state, event by event (type, version, warehouse,
level after, and the body fields that matter: reservation, deadline, an allocation's parts, a
queued line's place, a transfer's id), and every read of the read model must be a state the
model passed through.

The model decides every command of the stock log, not only the clients': an order line's
``AllocateLine``, the saga's ``Release``/``Commit`` (ids ``release:``/``commit:``),
``CancelBackorder``, ``TransferStock`` and ``ArriveTransfer``, and the clock's ``Expire``. Their
bodies come from the ``stock-commands`` topic (``check(..., bodies=...)``), the clients' from
their history too; an expiry's from its event (it is decided from a tick, never sent).

Rules (one decider per command kind in ``_DECIDERS``, one effect per event kind in ``_EFFECTS``):

- an order line is planned over the units available per warehouse: the preferred warehouse
  first, then by strategy (``priority``: the listed ones, then the others by name;
  ``most_stock``: the most available first, ties by name), each giving what it has, so a line is
  split only when the ones before fall short; ``Allocated`` (no level, no new version), then a
  ``Reserved`` per part, or ``AllocationRejected``;
- the backorder queue is strict FIFO: while a line waits no other line gets stock (it is queued
  behind, if it may wait, or rejected), and after every decision the head is served while it
  can be planned; ``Backordered`` and ``BackorderCancelled`` change no level nor version;
- a transfer takes the units out of its source (in transit) and its arrival puts them in the
  destination;
- a direct ``Reserve`` gets nothing while a line waits (strict FIFO binds it too);
- pre-orders: ``AnnounceIncoming`` adds (or withdraws, never below the units pre-ordered) a
  level's ``incoming`` units, one expected date per level (the latest announced; none once no
  unit is incoming); a ``Reserve`` with ``preorder``, or a line (or a queued line) with
  ``preorder``, takes the units available first (a line: every warehouse's), the rest from
  incoming units not pre-ordered yet (``awaiting``, counted in ``preordered``); a receipt's
  ``StockAdjusted`` leaves the units it brings beyond the pre-ordered ones off ``incoming``, then
  one ``PreorderArrived`` per hold awaiting units in that warehouse, oldest hold first, turns them
  into reserved units; a hold still awaiting units cannot be committed; a release or an expiry
  gives its awaited units back to the incoming ones.

A level is ``(on_hand, reserved, incoming, preordered, expected_at)``, each checked per event.

A decision of a kind the model does not know (a new command, a new event type) is
taken from the log as it is, and counted in ``Report.stats["unmodelled"]``: it must not crash the
check, and a non-zero count says the model needs a new rule.

``check`` returns the counts the chaos run reports:

- ``lost``: commands the broker acknowledged that never got a decision in the log (stock commands
  in the stock log; order commands in the order log);
- ``duplicated``: commands decided more than once with different results (re-announcing the
  same decision after a crash is fine: its events have the same ids and contents);
- ``history_anomalies``: decisions the model would not make, decisions of commands nobody sent,
  answers a client saw that the log does not hold, reads of states the model never had,
  acknowledged reservations that vanished from the table, reservations long past their deadline
  that never expired.

Time is the commands' own (``occurred_at`` of the decision, its command's ``issued_at``): an
expiry (command id ``expire:...``, sent by the worker's clock, not by a client) must come at or
after the reservation's deadline, and a commit at or after it is refused.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable

__all__ = ["SkuModel", "Report", "Fact", "check", "plan"]

_REJECTED = {"ReservationRejected", "CommandRejected", "AllocationRejected"}
_ENDED = {"Released": "RELEASED", "Committed": "COMMITTED", "Expired": "EXPIRED"}
_EXPIRE = "expire:"
STRATEGIES = ("priority", "most_stock")
# A reservation this long past its deadline at the end of a run should have expired (the clock
# ticks every second; a killed worker's partitions move within the session timeout).
EXPIRY_SLACK_MS = 60_000


def plan(available: dict[str, int], quantity: int, preferred: str, strategy: str,
         priority: Iterable[str]) -> list[tuple[str, int]] | None:
    """``[(warehouse, units)]`` covering ``quantity`` from the warehouses with units available,
    in the order the line asks for; None when they do not have enough together."""
    stocked = sorted(wh for wh, units in available.items() if units > 0)
    if strategy == "most_stock":
        ranked = sorted(stocked, key=lambda wh: -available[wh])  # stable: ties stay by name
    else:
        listed = [wh for wh in dict.fromkeys(priority) if wh in stocked]
        ranked = listed + [wh for wh in stocked if wh not in listed]
    if preferred in stocked:
        ranked = [preferred] + [wh for wh in ranked if wh != preferred]
    parts, left = [], quantity
    for wh in ranked:
        if left == 0:
            break
        parts.append((wh, min(left, available[wh])))
        left -= parts[-1][1]
    return None if left else parts


def part_id(order_id: str, line: int, warehouse: str) -> str:
    """The reservation of an order line's part in one warehouse (the ids the stock area uses)."""
    return f"{order_id}:{line}:{warehouse}"


Level = tuple[int, int, int, int, int]  # on_hand, reserved, incoming, preordered, expected_at
EMPTY: Level = (0, 0, 0, 0, 0)


@dataclass
class Fact:
    """One event the model expects. ``level``: the ``Level`` it leaves in ``warehouse``
    (None: it has no level of its own); ``seq``: the SKU's version it carries; ``body``: the
    fields its body must hold (more may be there: the schema grows), also what its effect reads."""

    type: str
    seq: int
    warehouse: str = ""
    level: Level | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.type in _REJECTED


@dataclass
class Hold:
    """A reservation, as the model has it (``awaiting``: its units that have not arrived)."""

    warehouse: str
    quantity: int
    order_id: str = ""
    state: str = "PENDING"
    deadline: int = 0  # epoch ms; 0: never
    awaiting: int = 0


@dataclass
class Command:
    id: str
    body: dict[str, Any]
    at: int  # its issued_at: the decision's occurred_at

    def __getitem__(self, name: str) -> Any:
        return self.body[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default)


@dataclass
class SkuModel:
    sku: str = ""
    exists: bool = False
    bundle: bool = False
    seq: int = 0
    levels: dict[str, Level] = field(default_factory=dict)
    reservations: dict[str, Hold] = field(default_factory=dict)
    waiting: dict[str, None] = field(default_factory=dict)  # holds awaiting units, oldest first
    in_transit: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (from, to, units)
    queue: list[dict[str, Any]] = field(default_factory=list)  # waiting lines, as Backordered has them
    snapshots: dict[int, dict[str, Level]] = field(default_factory=lambda: {0: {}})
    stats: Counter = field(default_factory=Counter)
    facts: list[Fact] = field(default_factory=list)  # of the decision being made

    def level(self, warehouse: str) -> Level:
        return self.levels.get(warehouse, EMPTY)

    def available(self) -> dict[str, int]:
        return {wh: level[0] - level[1] for wh, level in sorted(self.levels.items())}

    def preorderable(self) -> dict[str, int]:
        """Incoming units nobody pre-ordered yet, per warehouse that has any."""
        return {wh: level[2] - level[3] for wh, level in sorted(self.levels.items()) if level[2] > level[3]}

    # ------------------------------------------------------------------------ deciding
    def decide(self, command: Command) -> list[Fact] | None:
        """The facts of ``command`` (applied as they are decided: a decision may hold several
        parts, then serve the queue); None for a kind the model does not know."""
        decider = _DECIDERS.get(command.body.get("type", ""))
        if decider is None:
            return None
        self.facts = []
        decider(self, command)
        self._serve(command.at)
        return self.facts

    def emit(self, kind: str, warehouse: str = "", level: Level | None = None,
             versioned: bool | None = None, **body: Any) -> None:
        """Decide one event and apply it: it carries a new version when it leaves a level (or
        ``versioned``); a rejection, a plan or a queue change keeps the SKU's version."""
        bumps = level is not None if versioned is None else versioned
        fact = Fact(kind, self.seq + 1 if bumps and kind not in _REJECTED else self.seq, warehouse, level, body)
        self.facts.append(fact)
        self.apply(fact)

    def reject(self, kind: str = "CommandRejected", **body: Any) -> None:
        self.emit(kind, **body)

    def hold(self, line: dict[str, Any], planned: list[tuple[str, int]], incoming: dict[str, int],
             at: int) -> None:
        """A line's plan: ``Allocated`` (with the incoming units a pre-order's plan was made on),
        then one ``Reserved`` per part; the same for a line allocated at once and for a backorder
        served later."""
        available = self.available()
        parts = [{"warehouse": wh, "quantity": units, "reservation_id": part_id(line["order_id"], line["line"], wh),
                  "awaiting": max(0, units - available.get(wh, 0))} for wh, units in planned]
        self.emit("Allocated", order_id=line["order_id"], line=line["line"], quantity=line["quantity"],
                  strategy=line.get("strategy", "priority"), levels_seen=available, parts=parts,
                  incoming_seen=incoming)
        ttl = line.get("ttl_ms", 0)
        for part in parts:
            self.reserve(part["warehouse"], part["quantity"], part["reservation_id"], line["order_id"],
                         at + ttl if ttl else 0)
        if incoming:
            self.stats["preorder_lines"] += 1

    def reserve(self, warehouse: str, quantity: int, reservation_id: str, order_id: str, deadline: int) -> None:
        """One ``Reserved``: the units available first, the rest (a pre-order's) awaiting."""
        on_hand, reserved, incoming, preordered, expected_at = self.level(warehouse)
        awaiting = max(0, quantity - (on_hand - reserved))
        self.emit("Reserved", warehouse, (on_hand, reserved + quantity - awaiting, incoming, preordered + awaiting,
                                          expected_at),
                  reservation_id=reservation_id, order_id=order_id, quantity=quantity, expires_at=deadline,
                  awaiting=awaiting)

    def plan_line(self, line: dict[str, Any]) -> tuple[list[tuple[str, int]] | None, dict[str, int]]:
        """A line's plan over the units available; a pre-order's, when they fall short: all of
        them, in the line's order, then the rest from the incoming units (with those it saw)."""
        order = (line.get("preferred_warehouse", ""), line.get("strategy", "priority"), line.get("priority", ()))
        available = self.available()
        planned = plan(available, line["quantity"], *order)
        if planned is not None or not line.get("preorder"):
            return planned, {}
        incoming, units = self.preorderable(), sum(available.values())
        rest = plan(incoming, line["quantity"] - units, *order)
        if rest is None:
            return None, incoming
        merged: dict[str, int] = {}
        for wh, taken in (plan(available, units, *order) or []) + rest:
            merged[wh] = merged.get(wh, 0) + taken
        return list(merged.items()), incoming

    def _serve(self, at: int) -> None:
        """Strict FIFO: the head is served while it can be planned; a head that cannot stops the
        queue, so no line is served before one that waited longer."""
        while self.queue:
            head = self.queue[0]
            planned, incoming = self.plan_line(head)
            if planned is None:
                return
            self.hold(head, planned, incoming, at)
            self.stats["backorders_served"] += 1

    # ------------------------------------------------------------------------ applying
    def apply(self, fact: Fact) -> None:
        """The state after ``fact`` (a rejection changes nothing)."""
        if fact.rejected:
            return
        if fact.level is not None:
            self.levels[fact.warehouse] = fact.level
        effect = _EFFECTS.get(fact.type)
        if effect is not None:
            effect(self, fact)
        if fact.seq != self.seq:
            self.seq = fact.seq
            self.snapshots[self.seq] = dict(self.levels)

    def adopt(self, events: list[dict[str, Any]]) -> None:
        """Take a decision the model cannot make from the log: its levels and known effects."""
        for event in events:
            moved = event["seq"] > self.seq and event["warehouse"]
            self.apply(Fact(event["type"], event["seq"], event["warehouse"],
                            _level_of(event) if moved else None, event["body"][1]))


# ------------------------------------------------------------------------------ deciders
def _create(model: SkuModel, command: Command) -> None:
    components = command.get("components") or {}
    if (model.exists or not command.get("name", "").strip() or command.get("parent") == model.sku
            or model.sku in components or "" in components or any(n <= 0 for n in components.values())
            or _bad_cost(command.get("unit_cost"), components)):
        return model.reject()
    model.emit("ProductCreated", versioned=True, components=components)


_MAX_COST = Decimal("99999999999999.9999")


def _bad_cost(cost: Any, components: dict[str, int]) -> bool:
    """A unit cost is refused on a bundle, below 0, above 14 integer digits or past 4 places."""
    if cost is None:
        return False
    value = Decimal(str(cost))  # a Decimal from the log, its text from a JSON history
    return bool(components) or not 0 <= value <= _MAX_COST or value != value.quantize(Decimal("0.0001"))


def _adjust(model: SkuModel, command: Command) -> None:
    warehouse, quantity, hold = command["warehouse"], command["quantity"], command.get("hold_id", "")
    on_hand, reserved, incoming, preordered, expected_at = model.level(warehouse)
    # A receipt comes with the space its warehouse's ledger holds for it; a removal without.
    if (not model.exists or model.bundle or quantity == 0 or not warehouse or (quantity > 0) != bool(hold)
            or on_hand + quantity < reserved):
        return model.reject()
    if quantity < 0:
        return model.emit("StockAdjusted", warehouse, (on_hand + quantity, reserved, incoming, preordered,
                                                       expected_at), quantity=quantity)
    # The units beyond the pre-ordered ones are no longer incoming (those stay until they arrive).
    for_preorders = min(quantity, preordered)
    left = max(0, incoming - max(quantity, preordered)) + preordered
    model.emit("StockAdjusted", warehouse, _dated((on_hand + quantity, reserved, left, preordered, expected_at)),
               quantity=quantity)
    _arrive(model, warehouse, for_preorders)


def _dated(level: Level) -> Level:
    """A level with no incoming units expects none."""
    return level if level[2] else (*level[:4], 0)


def _arrive(model: SkuModel, warehouse: str, units: int) -> None:
    """``units`` arrived for the warehouse's pre-orders: the oldest holds awaiting there take them."""
    for reservation_id in [rid for rid in model.waiting if model.reservations[rid].warehouse == warehouse]:
        if units == 0:
            return
        held = model.reservations[reservation_id]
        take = min(units, held.awaiting)
        units -= take
        on_hand, reserved, incoming, preordered, expected_at = model.level(warehouse)
        model.emit("PreorderArrived", warehouse,
                   _dated((on_hand, reserved + take, incoming - take, preordered - take, expected_at)),
                   reservation_id=reservation_id, order_id=held.order_id, quantity=take,
                   awaiting=held.awaiting - take)
        model.stats["preorders_arrived"] += 1


def _announce(model: SkuModel, command: Command) -> None:
    warehouse, quantity, date = command["warehouse"], command["quantity"], command.get("expected_at", 0)
    on_hand, reserved, incoming, preordered, expected_at = model.level(warehouse)
    if (not model.exists or model.bundle or not warehouse or quantity == 0 or (quantity > 0 and date <= 0)
            or incoming + quantity < preordered):
        return model.reject()
    latest = max(expected_at, date) if quantity > 0 else expected_at
    model.emit("IncomingAnnounced", warehouse, _dated((on_hand, reserved, incoming + quantity, preordered, latest)),
               quantity=quantity, expected_at=date)


def _threshold(model: SkuModel, command: Command) -> None:
    warehouse = command["warehouse"]
    if not model.exists or not warehouse or command["threshold"] < 0:
        return model.reject()
    model.emit("LowStockThresholdSet", warehouse, model.level(warehouse), threshold=command["threshold"])


def _queued_prefix(model: SkuModel, reservation_id: str) -> bool:
    """Whether the id is one a waiting line's parts will take when it is served."""
    return any(reservation_id.startswith(part_id(line["order_id"], line["line"], "")) for line in model.queue)


def _reserve(model: SkuModel, command: Command) -> None:
    rid, warehouse, quantity, ttl = (command["reservation_id"], command["warehouse"], command["quantity"],
                                     command.get("ttl_ms", 0))
    on_hand, reserved, incoming, preordered, _ = model.level(warehouse)
    coverable = on_hand - reserved + (incoming - preordered if command.get("preorder") else 0)
    # Strict FIFO binds a direct reservation too: while lines wait, the units are theirs.
    if (not model.exists or model.bundle or quantity <= 0 or not warehouse or rid in model.reservations
            or _queued_prefix(model, rid) or ttl < 0 or model.queue or coverable < quantity):
        return model.reject("ReservationRejected")
    model.reserve(warehouse, quantity, rid, command.get("order_id", ""), command.at + ttl if ttl else 0)


def _end(model: SkuModel, command: Command) -> None:
    """Release, Commit or the clock's Expire of a pending reservation."""
    kind, held = command["type"], model.reservations.get(command["reservation_id"])
    if held is None or held.state != "PENDING":
        return model.reject()
    due = 0 < held.deadline <= command.at
    if kind == "Expire" and not due:
        return model.reject()
    # Too late to fulfil; or a hold whose pre-ordered units have not arrived.
    if kind == "Commit" and (due or held.awaiting):
        model.stats["commits_before_arrival"] += not due
        return model.reject(reason="RESERVATION_EXPIRED" if due else "PREORDER_NOT_ARRIVED")
    on_hand, reserved, incoming, preordered, expected_at = model.level(held.warehouse)
    left = held.quantity if kind == "Commit" else 0  # committed units leave the warehouse
    # Released or expired: the units held are available again, those awaited pre-orderable again.
    model.emit({"Release": "Released", "Commit": "Committed", "Expire": "Expired"}[kind], held.warehouse,
               (on_hand - left, reserved - held.quantity + held.awaiting, incoming, preordered - held.awaiting,
                expected_at), reservation_id=command["reservation_id"], quantity=held.quantity)


def _allocate(model: SkuModel, command: Command) -> None:
    line = command.body
    if (not model.exists or model.bundle or line["quantity"] <= 0 or line.get("strategy") not in STRATEGIES
            or line.get("ttl_ms", 0) < 0):
        return model.reject("AllocationRejected")
    # Strict FIFO: while lines wait, the units available are theirs, whatever this line needs.
    planned, incoming = (None, {}) if model.queue else model.plan_line(line)
    if planned is None and line.get("backorder"):
        return _enqueue(model, line)
    taken = planned and any(part_id(line["order_id"], line["line"], wh) in model.reservations for wh, _ in planned)
    if planned is None or taken:
        return model.reject("AllocationRejected")
    model.hold(line, planned, incoming, command.at)


def _enqueue(model: SkuModel, line: dict[str, Any]) -> None:
    """At the queue's tail; never twice, nor a line that holds a part in any warehouse already."""
    key = (line["order_id"], line["line"])
    if (any((w["order_id"], w["line"]) == key for w in model.queue)
            or any(part_id(*key, wh) in model.reservations for wh in model.levels)):
        return model.reject("AllocationRejected")
    model.emit("Backordered", order_id=line["order_id"], line=line["line"], quantity=line["quantity"],
               position=len(model.queue) + 1, preferred_warehouse=line.get("preferred_warehouse", ""),
               strategy=line.get("strategy", "priority"), priority=list(line.get("priority", ())),
               ttl_ms=line.get("ttl_ms", 0), preorder=bool(line.get("preorder")))


def _unqueue(model: SkuModel, command: Command) -> None:
    waiting = [w for w in model.queue if (w["order_id"], w["line"]) == (command["order_id"], command["line"])]
    if not waiting:
        return model.reject()
    model.emit("BackorderCancelled", order_id=command["order_id"], line=command["line"],
               quantity=waiting[0]["quantity"])


def _transfer_out(model: SkuModel, command: Command) -> None:
    source, quantity = command["source"], command["quantity"]
    on_hand, reserved, *incoming = model.level(source)
    if (not model.exists or model.bundle or quantity <= 0 or not source or source == command["destination"]
            or command.id in model.in_transit or on_hand - reserved < quantity):
        return model.reject()
    model.emit("TransferredOut", source, (on_hand - quantity, reserved, *incoming), transfer_id=command.id,
               destination=command["destination"], quantity=quantity)


def _transfer_in(model: SkuModel, command: Command) -> None:
    moving = model.in_transit.get(command["transfer_id"])
    if moving is None:
        return model.reject()
    source, destination, quantity = moving
    on_hand, *rest = model.level(destination)
    model.emit("TransferArrived", destination, (on_hand + quantity, *rest), transfer_id=command["transfer_id"],
               source=source, quantity=quantity)


_DECIDERS: dict[str, Callable[[SkuModel, Command], None]] = {
    "CreateProduct": _create,
    "AdjustStock": _adjust,
    "SetLowStockThreshold": _threshold,
    "Reserve": _reserve,
    "Release": _end,
    "Commit": _end,
    "Expire": _end,
    "AllocateLine": _allocate,
    "CancelBackorder": _unqueue,
    "TransferStock": _transfer_out,
    "ArriveTransfer": _transfer_in,
    "AnnounceIncoming": _announce,
}


# ------------------------------------------------------------------------------ effects
def _created(model: SkuModel, fact: Fact) -> None:
    model.exists, model.bundle = True, bool(fact.body.get("components"))


def _reserved(model: SkuModel, fact: Fact) -> None:
    body, awaiting = fact.body, fact.body.get("awaiting", 0)
    model.reservations[body["reservation_id"]] = Hold(fact.warehouse, body["quantity"], body.get("order_id", ""),
                                                      deadline=body.get("expires_at", 0), awaiting=awaiting)
    if awaiting:
        model.waiting[body["reservation_id"]] = None
        model.stats["preorder_holds"] += 1


def _ended(model: SkuModel, fact: Fact) -> None:
    held = model.reservations.get(fact.body["reservation_id"])
    if held is not None:
        held.state, held.awaiting = _ENDED[fact.type], 0
    model.waiting.pop(fact.body["reservation_id"], None)


def _preorder_arrived(model: SkuModel, fact: Fact) -> None:
    held = model.reservations.get(fact.body["reservation_id"])
    if held is not None:
        held.awaiting = fact.body["awaiting"]
    if not fact.body["awaiting"]:
        model.waiting.pop(fact.body["reservation_id"], None)


def _allocated(model: SkuModel, fact: Fact) -> None:
    """A plan of the queue's head pops it; any other is of a line allocated at once."""
    head = model.queue[0] if model.queue else {}
    if (head.get("order_id"), head.get("line")) == (fact.body["order_id"], fact.body["line"]):
        model.queue.pop(0)


def _backordered(model: SkuModel, fact: Fact) -> None:
    model.queue.append(dict(fact.body))


def _backorder_cancelled(model: SkuModel, fact: Fact) -> None:
    key = (fact.body["order_id"], fact.body["line"])
    model.queue = [w for w in model.queue if (w["order_id"], w["line"]) != key]


def _transferred_out(model: SkuModel, fact: Fact) -> None:
    body = fact.body
    model.in_transit[body["transfer_id"]] = (fact.warehouse, body["destination"], body["quantity"])


def _transfer_arrived(model: SkuModel, fact: Fact) -> None:
    model.in_transit.pop(fact.body["transfer_id"], None)


_EFFECTS: dict[str, Callable[[SkuModel, Fact], None]] = {
    "ProductCreated": _created,
    "Reserved": _reserved,
    "Released": _ended,
    "Committed": _ended,
    "Expired": _ended,
    "Allocated": _allocated,
    "Backordered": _backordered,
    "BackorderCancelled": _backorder_cancelled,
    "TransferredOut": _transferred_out,
    "TransferArrived": _transfer_arrived,
    "PreorderArrived": _preorder_arrived,
}
# Event types the model decides itself; a decision holding any other is taken from the log.
_KNOWN = set(_EFFECTS) | _REJECTED | {"StockAdjusted", "LowStockThresholdSet", "IncomingAnnounced"}


# ------------------------------------------------------------------------------ checking
@dataclass
class Report:
    lost: int = 0
    duplicated: int = 0
    history_anomalies: int = 0
    examples: list[str] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    decided: Counter = field(default_factory=Counter)  # decisions the model made, per command type

    def anomaly(self, what: str) -> None:
        self.history_anomalies += 1
        self._example(what)

    def _example(self, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(what)


def _level_of(event: dict[str, Any]) -> Level:
    """The level an event carries (one logged before pre-orders has no incoming units)."""
    return (event["on_hand"], event["reserved"], event.get("incoming", 0), event.get("preordered", 0),
            event.get("expected_at", 0))


def _outcome(event: dict[str, Any]) -> tuple:
    return event["type"], event["seq"], event["warehouse"], *_level_of(event)


def _decisions(events: Iterable[dict[str, Any]], report: Report) -> list[list[dict[str, Any]]]:
    """Each decision once, as its events in log order (one SKU's decision is one run of its
    events with one command id). An event announced again (same id) is dropped, or counts as a
    duplicate if it differs; so does a second decision of a command."""
    seen: dict[str, tuple] = {}
    decided: set[tuple[str, str]] = set()
    last: dict[str, list[dict[str, Any]]] = {}
    out: list[list[dict[str, Any]]] = []
    for event in events:
        event_id = event["event_id"]
        if event_id in seen:
            if seen[event_id] != _outcome(event):
                report.duplicated += 1
                report._example(f"event {event_id} of command {event['command_id']} announced twice: "
                                f"{seen[event_id]} then {_outcome(event)}")
            continue
        seen[event_id] = _outcome(event)
        sku, command_id = event["sku"], event["command_id"]
        current = last.get(sku)
        if current is not None and current[0]["command_id"] == command_id:
            current.append(event)
        elif (sku, command_id) in decided:
            report.duplicated += 1
            report._example(f"command {command_id} of {sku} decided twice")
        else:
            decided.add((sku, command_id))
            last[sku] = [event]
            out.append(last[sku])
    return out


def _same(expected: Any, logged: Any) -> bool:
    """``logged`` holds what is ``expected`` (a record may hold more fields than the model knows)."""
    if isinstance(expected, dict):
        return isinstance(logged, dict) and all(_same(v, logged.get(k)) for k, v in expected.items())
    if isinstance(expected, (list, tuple)):
        return (isinstance(logged, (list, tuple)) and len(expected) == len(logged)
                and all(_same(a, b) for a, b in zip(expected, logged)))
    return expected == logged


def _difference(fact: Fact, event: dict[str, Any]) -> str:
    """How ``event`` differs from the model's ``fact`` ("" when it does not)."""
    if fact.type != event["type"]:
        return f"{event['type']}, the model says {fact.type}"
    if fact.seq != event["seq"]:
        return f"{fact.type} at version {event['seq']}, the model's is {fact.seq}"
    logged = (event["warehouse"], *_level_of(event))
    if fact.level is not None and logged != (fact.warehouse, *fact.level):
        return f"{fact.type} left {logged}, the model {(fact.warehouse, *fact.level)}"
    wrong = {k: (event["body"][1].get(k), v) for k, v in fact.body.items() if not _same(v, event["body"][1].get(k))}
    return f"{fact.type} holds (logged, model) {wrong}" if wrong else ""


def _compare(facts: list[Fact], events: list[dict[str, Any]]) -> str:
    if [f.type for f in facts] != [e["type"] for e in events]:
        return f"decided {[e['type'] for e in events]}, the model says {[f.type for f in facts]}"
    return next((d for f, e in zip(facts, events) if (d := _difference(f, e))), "")


def _replay(model: SkuModel, events: list[dict[str, Any]], body: dict[str, Any] | None, report: Report) -> None:
    first = events[0]
    if body is None:
        report.anomaly(f"{first['sku']}: a decision for command {first['command_id']} nobody sent")
        return
    unknown = [e["type"] for e in events if e["type"] not in _KNOWN]
    facts = None if unknown else model.decide(Command(first["command_id"], body, first["occurred_at"]))
    if facts is None:
        model.adopt(events)
        report.stats["unmodelled"] += 1
        return
    report.decided[body["type"]] += 1
    if problem := _compare(facts, events):
        report.anomaly(f"{first['sku']}: {body.get('type')} {first['command_id']} {problem}")


def _body_of(events: list[dict[str, Any]], bodies: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The command a decision answers, from the log or a client; or an expiry the clock decided."""
    first = events[0]
    command_id = first["command_id"]
    if command_id in bodies:
        return bodies[command_id]
    if command_id.startswith(_EXPIRE) and first.get("sender") == "clock":
        return {"type": "Expire", "reservation_id": first["body"][1]["reservation_id"]}
    return None


def check(calls: list[dict[str, Any]], events: list[dict[str, Any]],
          table_reservations: dict[str, tuple[str, str]], now_ms: int | None = None,
          bodies: dict[str, dict[str, Any]] | None = None,
          order_events: Iterable[dict[str, Any]] = ()) -> Report:
    """Checks the stock log (``events`` in log order) against the history ``calls``, the stock
    commands' ``bodies`` (command id -> body, from ``stock-commands``), the order log
    (``order_events``: the answers to order commands) and the table; with ``now_ms``, also that
    reservations long past their deadline have expired."""
    report = Report()
    commands = {c["id"]: c for c in calls if c["op"] == "command"}
    known = {**{cid: c["body"] for cid, c in commands.items()}, **(bodies or {})}
    models: dict[str, SkuModel] = {}
    decided: dict[str, str] = {}
    for decision in _decisions(events, report):
        sku = decision[0]["sku"]
        _replay(models.setdefault(sku, SkuModel(sku)), decision, _body_of(decision, known), report)
        decided[decision[0]["command_id"]] = decision[0]["type"]
    for event in order_events:
        decided.setdefault(event["command_id"], event["kind"])
    for call in commands.values():
        _check_answer(call, decided.get(call["id"]), report)
    for call in calls:
        if call["op"] == "read":
            _check_read(call, models.get(call["sku"]), report)
    _check_reservations(models, table_reservations, report)
    if now_ms is not None:
        _check_expired(models, now_ms, report)
    for model in models.values():
        report.stats.update(model.stats)
    return report


def _check_expired(models: dict[str, SkuModel], now_ms: int, report: Report) -> None:
    for sku, model in models.items():
        for reservation_id, held in model.reservations.items():
            if held.state == "PENDING" and 0 < held.deadline < now_ms - EXPIRY_SLACK_MS:
                report.anomaly(f"reservation {reservation_id} of {sku} due at {held.deadline} never expired")


def _check_answer(call: dict[str, Any], logged: str | None, report: Report) -> None:
    if logged is None:
        if call["accepted"]:
            report.lost += 1
            report._example(f"command {call['id']} was acknowledged by the broker and never decided")
        return
    if call["outcome"] != "unknown" and call["kind"] != logged:
        report.anomaly(f"command {call['id']}: the client was answered {call['kind']}, the log holds {logged}")


def _check_read(call: dict[str, Any], model: SkuModel | None, report: Report) -> None:
    for warehouse, on_hand, reserved, version in call["levels"]:
        snapshot = None if model is None else model.snapshots.get(version)
        if snapshot is None or snapshot.get(warehouse, EMPTY)[:2] != (on_hand, reserved):
            report.anomaly(f"read of {call['sku']}/{warehouse} at version {version} saw "
                           f"{(on_hand, reserved)}, the model had {snapshot and snapshot.get(warehouse)}")


def _check_reservations(models: dict[str, SkuModel], table: dict[str, tuple[str, str]],
                        report: Report) -> None:
    for sku, model in models.items():
        for reservation_id, held in model.reservations.items():
            in_table = table.get(reservation_id)
            if in_table is None and held.state == "PENDING":
                report.anomaly(f"pending reservation {reservation_id} of {sku} vanished from the table")
            elif in_table is not None and in_table != (sku, held.state):
                report.anomaly(f"reservation {reservation_id}: table {in_table}, model {(sku, held.state)}")
