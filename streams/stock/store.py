"""How one partition's stock state is laid out in its changelogged table, with exactly-once effects.

The table is any ``MutableMapping`` (a faust Table in the worker, a dict in tests). Its keys:

- ``s:<sku>``            the SKU: product, levels per warehouse, ``seq`` and ``n`` (commands recorded)
- ``r:<sku>:<reservation>`` one reservation (ids are the SKU's: the same id on two SKUs is two)
- ``c:<sku>:<command>``  a decided command: its events, so a retry re-announces the same outcome
- ``k:<sku>:<slot>``     a ring of the last ``window`` command ids per SKU, to forget older ones
- ``x:<due>:<sku>:<reservation>`` ``[sku, reservation]`` of a reservation with a TTL, the keys
  ordered by deadline (epoch ms)
- ``t:<time>:<tick>``    a tick of the clock and the index entries it found due (kept an hour)

Values are plain JSON (the changelog's encoding, ``streams/partition/local.py``): a product's
unit cost (a ``Decimal``) is kept as its text, in the SKU and in the events a command record holds.

Every write of one command goes to the same changelog partition (faust sends a table change to
the partition of the event being processed), and a Kafka partition keeps order, so after a crash
the changelog holds a *prefix* of a command's writes. The command record is written first and
the SKU last; a redelivered command whose record survived but whose SKU write did not is
completed from the record. Nothing is applied twice, nothing acknowledged is lost.

Expiry follows the clock in the log: a ``Tick`` (a command on the pseudo-SKU ``__clock__``) at
time T turns every index entry due by T into an ``Expire`` command of the reservation's SKU,
with a deterministic id (``expire:<due>:<sku>:<reservation>``), decided (and remembered) like
any other command; an entry whose reservation already ended some other way is just dropped.
The tick is recorded first, with the entries it found: a redelivered tick so handles the same
ones (whatever became of the index), completes what a crash cut short, and answers with the
same events, which the first delivery may never have published.

A command may decide several events (an order line's ``AllocateLine``: its plan, then a
``Reserved`` per warehouse): they are recorded together, every reservation they hold is written
(and indexed by deadline) before the SKU, and a redelivery answers all of them. So are the
backorders any decision serves (``logic.py``): the queue is part of the SKU (key ``bo``), and
a served line's reservations are new ones (a line is queued once, only when none of the
reservations its command loads exists, and no ``Reserve`` may take one of its ids while it
waits), so they need not be loaded first.

A command for a SKU that does not exist is recorded like any other (its UNKNOWN_PRODUCT
rejection), so that it keeps that answer once the SKU is created. The cost: a SKU that is never
created still holds a state and up to ``window`` records. The API refuses unknown products
before they reach the log, so only an upstream producer writing to Kafka directly can make them.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any, MutableMapping

from streams.partition.batch import items_between
from streams.stock.allocation import reservation_id_for
from streams.stock.logic import decide, fold
from streams.stock.records import (
    AllocateLine,
    Awaiting,
    Backorder,
    Command,
    Committed,
    Event,
    Level,
    Product,
    Release,
    Released,
    Reservation,
    ReservationState,
    Reserve,
    Reserved,
    Commit,
    Expire,
    Expired,
    SkuState,
    Tick,
    event_from_avro,
    event_to_avro,
)

__all__ = ["StockStore", "expire_id"]

log = logging.getLogger(__name__)


def _sku_key(sku: str) -> str:
    return f"s:{sku}"


def _reservation_key(sku: str, reservation_id: str) -> str:
    return f"r:{sku}:{reservation_id}"


def _command_key(sku: str, command_id: str) -> str:
    return f"c:{sku}:{command_id}"


def _slot_key(sku: str, slot: int) -> str:
    return f"k:{sku}:{slot}"


_EXPIRY = "x:"


def _expiry_key(sku: str, reservation_id: str, due: int) -> str:
    # Zero-padded, so the keys sort by deadline (13 digits of epoch ms last until the year 2286).
    return f"{_EXPIRY}{due:013d}:{sku}:{reservation_id}"


def _upto(prefix: str, at: int) -> str:
    """The upper bound of the index keys due (or ticks made) at or before ``at``: ';' sorts
    right after ':'."""
    return f"{prefix}{max(at, 0):013d};"


_TICK = "t:"
# A tick's record is needed while the tick may be redelivered: until its offset is committed.
TICK_RECORD_RETENTION_MS = 3_600_000


def expire_id(entry: str) -> str:
    """The command id of an expiry: unique to the SKU, the reservation and its deadline, so its
    event id never collides with another SKU's (reservation ids are per SKU) or a reused id's."""
    return "expire:" + entry.removeprefix(_EXPIRY)


def _tick_key(at: int, tick_id: str) -> str:
    return f"{_TICK}{max(at, 0):013d}:{tick_id}"


def _dump_sku(state: SkuState, recorded: int) -> dict[str, Any]:
    product = state.product
    return {
        "sku": state.sku,
        "product": None if product is None else _dump_product(product),
        "levels": {wh: _dump_level(lv) for wh, lv in state.levels.items()},
        "seq": state.seq,
        "n": recorded,
        "t": dict(state.thresholds),
        "tr": {tid: list(moving) for tid, moving in state.in_transit.items()},
        "bo": [[b.order_id, b.line, b.quantity, b.preferred_warehouse, b.strategy, list(b.priority), b.ttl_ms,
                b.preorder] for b in state.backorders],
        "aw": [[a.reservation_id, a.order_id, a.warehouse, a.units] for a in state.awaiting],
    }


def _dump_level(level: Level) -> list[int]:
    """``[on_hand, reserved]``, then ``incoming, preordered, expected_at`` once any is set."""
    values = [level.on_hand, level.reserved, level.incoming, level.preordered, level.expected_at]
    return values if any(values[2:]) else values[:2]


def _dump_product(product: Product) -> list[Any]:
    """``[name, description, category, parent, attributes, components]``, then the unit cost as
    text when it is known (a state without one stays readable by a worker that predates costs)."""
    values = [product.name, product.description, product.category, product.parent,
              dict(product.attributes), dict(product.components)]
    return values if product.unit_cost is None else [*values, str(product.unit_cost)]


def _load_product(values: list[Any] | None) -> Product | None:
    """A product is [name, description, category, parent, attributes, components, unit cost]; a
    state written before bundles has no components (an ordinary product), one written before
    costs no cost (None: not known)."""
    if values is None:
        return None
    cost = values[6] if len(values) > 6 else None
    return Product(*values[:6], unit_cost=None if cost is None else Decimal(cost))


def _event_json(event: Event) -> dict[str, Any]:
    """An event as its Avro record, JSON-safe: a unit cost as text (``event_from_avro`` reads both)."""
    data = event_to_avro(event)
    name, body = data["body"]
    if isinstance(body.get("unit_cost"), Decimal):
        data["body"] = (name, {**body, "unit_cost": str(body["unit_cost"])})
    return data


def _load_sku(sku: str, data: dict[str, Any] | None) -> tuple[SkuState, int]:
    if data is None:
        return SkuState(sku), 0
    product = _load_product(data["product"])
    levels = {wh: Level(*values) for wh, values in data["levels"].items()}
    in_transit = {tid: tuple(moving) for tid, moving in data.get("tr", {}).items()}
    # A backorder is [order, line, quantity, preferred, strategy, priority, ttl, preorder]; a state
    # written before backorders has no queue, one written before pre-orders no preorder flag.
    backorders = tuple(Backorder(order, line, quantity, preferred, strategy, tuple(priority), ttl, *rest)
                       for order, line, quantity, preferred, strategy, priority, ttl, *rest in data.get("bo", ()))
    awaiting = tuple(Awaiting(*values) for values in data.get("aw", ()))
    return SkuState(sku, product, levels, {}, data["seq"], data.get("t", {}), in_transit,
                    backorders, awaiting), data["n"]


def _dump_reservation(r: Reservation) -> dict[str, Any]:
    return {"id": r.reservation_id, "order": r.order_id, "sku": r.sku, "wh": r.warehouse,
            "qty": r.quantity, "state": str(r.state), "exp": r.expires_at}


def _load_reservation(data: dict[str, Any]) -> Reservation:
    return Reservation(data["id"], data["order"], data["sku"], data["wh"], data["qty"],
                       ReservationState(data["state"]), data.get("exp", 0))


class StockStore:
    """Decides commands against one partition's table and writes the outcome, exactly once."""

    def __init__(self, table: MutableMapping[str, Any], window: int = 10_000) -> None:
        self.table = table
        self.window = window

    # ------------------------------------------------------------------------------ reads
    def sku(self, sku: str) -> SkuState:
        return self._load(sku)[0]

    def reservation(self, sku: str, reservation_id: str) -> Reservation | None:
        data = self.table.get(_reservation_key(sku, reservation_id))
        return None if data is None else _load_reservation(data)

    def _load(self, sku: str, command: Command | None = None) -> tuple[SkuState, int]:
        """The SKU's state with the reservations ``command`` may touch (not all of them)."""
        state, recorded = _load_sku(sku, self.table.get(_sku_key(sku)))
        if command is not None:
            held = [r for rid in _reservation_ids(state, command)
                    if (r := self.reservation(sku, rid)) is not None]
            if held:
                state = replace(state, reservations={r.reservation_id: r for r in held})
        return state, recorded

    # ----------------------------------------------------------------------------- writes
    def handle(self, command: Command) -> list[Event]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        if isinstance(command.body, Tick):
            return self._tick(command)
        record = self.table.get(_command_key(command.sku, command.command_id))
        if record is not None:
            return self._redeliver(command, record)
        state, recorded = self._load(command.sku, command)
        events = decide(state, command)
        after = fold(state, events)
        # Recorded even when the SKU does not exist (an UNKNOWN_PRODUCT rejection): once it is
        # created, a redelivery or retry of this command must get the same answer, not a new one.
        record = self._record(command, events, recorded + 1)
        self.table[_command_key(command.sku, command.command_id)] = record
        self._write(state, after, command, record, events)
        return events

    def _record(self, command: Command, events: list[Event], number: int) -> dict[str, Any]:
        evicted = self.table.get(_slot_key(command.sku, number % self.window))
        return {"n": number, "events": [_event_json(e) for e in events], "evict": evicted}

    def _write(self, before: SkuState, after: SkuState, command: Command,
               record: dict[str, Any], events: list[Event]) -> None:
        for rid, held in after.reservations.items():
            if before.reservations.get(rid) != held:
                self.table[_reservation_key(held.sku, rid)] = _dump_reservation(held)
        for event in events:  # also when completing a redelivery: the entry may not have survived
            if isinstance(event.body, Reserved) and event.body.expires_at:
                key = _expiry_key(event.sku, event.body.reservation_id, event.body.expires_at)
                self.table[key] = [event.sku, event.body.reservation_id]
        self.table[_slot_key(command.sku, record["n"] % self.window)] = command.command_id
        self.table[_sku_key(command.sku)] = _dump_sku(after, record["n"])
        if record["evict"]:
            self._forget(command.sku, record["evict"])

    def _redeliver(self, command: Command, record: dict[str, Any]) -> list[Event]:
        events = [event_from_avro(e) for e in record["events"]]
        state, recorded = self._load(command.sku, command)
        if recorded < record["n"]:
            # The crash came between the record and the SKU write: finish the command.
            log.warning("completing a partly written command", extra={"command_id": command.command_id})
            self._write(state, fold(state, events), command, record, events)
        elif recorded == record["n"] and record["evict"]:
            # It was the SKU's last command: its eviction may not have been written yet.
            self._forget(command.sku, record["evict"])
        return events

    def _tick(self, tick: Command) -> list[Event]:
        """Expire every reservation due at or before the tick's time, in deadline order.

        The tick is recorded first with the entries it found, so a redelivery handles the same
        ones and answers with the same events, even for entries whose deletion survived."""
        at = tick.issued_at
        key = _tick_key(at, tick.command_id)
        record = self.table.get(key)
        if record is None:
            record = {"due": [[k, sku, rid] for k, (sku, rid) in
                              items_between(self.table, _EXPIRY, _upto(_EXPIRY, at))]}
            self.table[key] = record
        events: list[Event] = []
        for entry, sku, reservation_id in record["due"]:
            expire = Command(expire_id(entry), sku, at, Expire(reservation_id), "clock")
            if self._expiry_pending(expire):
                events.extend(self.handle(expire))
            self.table.pop(entry, None)
        for old, _ in items_between(self.table, _TICK, _upto(_TICK, at - TICK_RECORD_RETENTION_MS)):
            self.table.pop(old, None)
        return events

    def _expiry_pending(self, expire: Command) -> bool:
        """Whether the expiry is still to decide, or was decided and may need completing."""
        if self.table.get(_command_key(expire.sku, expire.command_id)) is not None:
            return True
        held = self.reservation(expire.sku, expire.body.reservation_id)
        return held is not None and held.state is ReservationState.PENDING

    def _forget(self, sku: str, command_id: str) -> None:
        """Drop a command that fell out of the window, and the reservation it ended, if any.

        The record goes last, so a crash half way leaves it to be forgotten again."""
        key = _command_key(sku, command_id)
        for data in (self.table.get(key) or {}).get("events", ()):
            event = event_from_avro(data)
            if isinstance(event.body, (Released, Committed, Expired)):
                self.table.pop(_reservation_key(sku, event.body.reservation_id), None)
        self.table.pop(key, None)


def _reservation_ids(state: SkuState, command: Command) -> list[str]:
    """The reservations ``command`` decides on: its own, or those an order line's allocation
    would hold (one per warehouse), so a line allocated again is refused, not held twice."""
    body = command.body
    if isinstance(body, (Reserve, Release, Commit, Expire)):
        return [body.reservation_id]
    if isinstance(body, AllocateLine):
        return [reservation_id_for(body.order_id, body.line, wh) for wh in state.levels]
    return []
