"""Resumable subscriptions to the stock events: the ledger's missed events, then the live ones.

Every stock event has an ``offset``, its ledger position, which grows in commit order
(storage/sink.py). A subscriber that saw offset N and comes back asks for the events after N:

1. it subscribes to the hub first, so every event committed from then on reaches its queue;
2. then reads the ledger after N, page by page (keyset on position), and sends those: every
   event committed before (1) is there;
3. then sends the queue's messages, skipping those already sent (offset not past the last one).

The queue is in offset order (the hub gets the NOTIFYs in commit order), so each event arrives
once, in offset order, with no gap. A replayed message is built from its ledger row to equal the
live one (``message_from_row``); a low-stock event is followed by its alert, which carries the
same offset and comes after it (``message_key``).

Used by the WebSocket (api/routes/ws.py) and the gRPC service alike.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Iterator

from sqlalchemy.ext.asyncio import AsyncEngine

from api.events import LOST, EventHub, low_stock_alert
from storage.queries import count_ledger_after, get_ledger_after, get_ledger_head

__all__ = ["ReplayTooLong", "SubscriberTooSlow", "watch", "check_replay", "ledger_head",
           "message_from_row", "messages_of_row", "message_key", "Cursor", "REPLAY_PAGE"]

log = logging.getLogger(__name__)

#: Ledger rows read per replay query: a slow subscriber holds no connection between pages.
REPLAY_PAGE = 500
# A replay overtaken by more live events than the queue holds (it dropped the subscription) is
# resumed from the ledger again, this many times at most; after that the subscriber is too slow.
_MAX_RESYNCS = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ReplayTooLong(Exception):
    """More than the replay limit of events were missed: re-read the levels instead."""


class SubscriberTooSlow(Exception):
    """The live queue overflowed: the hub dropped the subscriber rather than wait for it."""


# ------------------------------------------------------------------------------ pure parts
def _millis(moment: datetime | None) -> int:
    """Epoch milliseconds, as the events carry them (0 for none); exact, no float."""
    return 0 if moment is None else (moment - _EPOCH) // timedelta(milliseconds=1)


def message_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The live notification (storage/sink.py ``notification`` with its offset) of a ledger row.
    The levels' columns added by migration 0011 are NULL for older events: 0 / False."""
    on_hand, reserved = row["on_hand_after"], row["reserved_after"]
    return {
        "event_id": str(row["event_id"]), "command_id": row["command_id"], "sku": row["sku"],
        "seq": row["seq"], "occurred_at": _millis(row["occurred_at"]), "warehouse": row["warehouse"],
        "on_hand": on_hand, "reserved": reserved,
        "on_hand_delta": row["on_hand_delta"], "reserved_delta": row["reserved_delta"],
        "sender": row["sender"],
        "low_stock_threshold": row["low_stock_threshold_after"] or 0,
        "low_stock": bool(row["low_stock"]),
        "incoming": row["incoming_after"] or 0, "preordered": row["preordered_after"] or 0,
        "expected_at": _millis(row["expected_at_after"]),
        "body": row["payload"], "type": row["event_type"], "available": on_hand - reserved,
        "duplicate": False, "offset": row["position"],
    }


def messages_of_row(row: dict[str, Any]) -> list[dict[str, Any]]:
    """What a subscriber got live for the row's event: the event, and its alert if it took the
    level below its threshold (as api/events.py publishes them)."""
    message = message_from_row(row)
    return [message, low_stock_alert(message)] if message["low_stock"] else [message]


def message_key(message: dict[str, Any]) -> tuple[int, int]:
    """A message's place in a subscription: its offset, the event before its alert."""
    return message["offset"], int(message.get("type") == "LowStock")


class Cursor:
    """The last message sent: a message is sent only when it comes after it (the replay's and the
    queue's overlap is skipped). ``after``: the offset the subscriber saw last, alert included."""

    def __init__(self, after: int | None = None) -> None:
        self.last: tuple[int, int] | None = None if after is None else (after, 1)

    @property
    def offset(self) -> int | None:
        return None if self.last is None else self.last[0]

    def advance(self, message: dict[str, Any]) -> bool:
        """Whether to send ``message``; if so, it is the last one sent. A message without an
        offset (a sink older than offsets) is sent as it is."""
        if "offset" not in message:
            return True
        key = message_key(message)
        if self.last is not None and key <= self.last:
            return False
        self.last = key
        return True


# ------------------------------------------------------------------------------- the ledger
async def ledger_head(engine: AsyncEngine) -> int:
    """The ledger's last offset: a subscriber starting from it misses nothing committed later
    (positions grow in commit order), whenever its subscription is in place."""
    async with engine.connect() as conn:
        return await get_ledger_head(conn)


async def check_replay(engine: AsyncEngine, after: int, product_id: str | None, warehouse: str | None,
                       replay_max: int) -> None:
    """``ReplayTooLong`` when more than ``replay_max`` events of the filter follow ``after``."""
    async with engine.connect() as conn:
        missed = await count_ledger_after(conn, after, product_id, warehouse, replay_max + 1)
    if missed > replay_max:
        raise ReplayTooLong(f"more than {replay_max} events after offset {after}")


async def _pages(engine: AsyncEngine, after: int, product_id: str | None,
                 warehouse: str | None) -> list[dict[str, Any]]:
    async with engine.connect() as conn:  # not held while the subscriber reads the page
        return await get_ledger_after(conn, after, product_id, warehouse, REPLAY_PAGE)


def _replayed(rows: list[dict[str, Any]], cursor: Cursor) -> Iterator[dict[str, Any]]:
    for row in rows:
        for message in messages_of_row(row):
            if cursor.advance(message):
                yield message


# ------------------------------------------------------------------------------- watch
async def watch(hub: EventHub, engine: AsyncEngine, *, product_id: str | None = None,
                warehouse: str | None = None, after: int | None = None,
                replay_max: int = 100_000) -> AsyncIterator[dict[str, Any]]:
    """Every stock-event message for the filter: first those with offset > `after` already in
    the ledger (when `after` is given), in offset order, then live ones, in offset order, with
    no gap and no duplicate. An async generator; closing it unsubscribes.

    Raises ``ReplayTooLong`` (before yielding anything) when more than ``replay_max`` events
    were missed, ``SubscriberTooSlow`` once the live queue overflowed and is drained.

    When the hub loses its LISTEN connection (and the NOTIFYs meanwhile), the subscription
    catches up from the ledger once the hub listens again; without an offset to resume from (no
    ``after``, nothing received yet) it ends with ``SubscriberTooSlow``."""
    cursor = Cursor(after)
    replaying = after is not None
    for round_ in range(_MAX_RESYNCS + 1):
        if round_ and not hub.listening.is_set():
            await hub.listening.wait()
        async with hub.subscribe(product_id, warehouse) as sub:  # before reading the ledger
            sub.resumable = True
            if replaying:
                if round_ == 0:
                    await check_replay(engine, after, product_id, warehouse, replay_max)
                while True:
                    rows = await _pages(engine, cursor.offset, product_id, warehouse)
                    for message in _replayed(rows, cursor):
                        yield message
                    if len(rows) < REPLAY_PAGE or sub.overflowed:
                        break
                if sub.overflowed:  # live events came faster than the replay went: again
                    log.info("subscriber overtaken while replaying; resuming from the ledger",
                             extra={"offset": cursor.offset})
                    continue
            async with contextlib.aclosing(_live(sub, cursor)) as live:
                async for message in live:
                    yield message
        if cursor.offset is None:
            raise SubscriberTooSlow("the event stream was interrupted before any event")
        log.info("live events lost by the hub; resuming from the ledger", extra={"offset": cursor.offset})
        replaying = True
    raise SubscriberTooSlow("overtaken by live events while replaying, again and again")


async def _live(sub: Any, cursor: Cursor) -> AsyncIterator[dict[str, Any]]:
    """The queue's new messages; ends when the hub lost events (resume from the ledger)."""
    while True:
        message = await sub.queue.get()
        if message is LOST:
            return
        if cursor.advance(message):
            yield message
        if sub.queue.empty():
            if sub.overflowed:
                raise SubscriberTooSlow("the live queue overflowed")
            if sub.lost:
                return
