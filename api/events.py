"""The API's view of the event stream: PostgreSQL NOTIFYs from the sink, fanned out.

The sink NOTIFYs each event inside the transaction that persisted it, so an event seen here is
durable in the read model: resolving a waiting request with it makes "read after acknowledged
write" hold. Requests wait by command id; WebSocket subscribers receive every new event.

Notifications arrive in commit order, and a stock event's ``offset`` (its ledger position) grows
in commit order too (storage/sink.py), so a subscription's queue is in offset order: what
api/subscriptions.py relies on to resume a subscriber from the ledger without gap or duplicate.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import asyncpg

from storage.models import NOTIFY_CHANNEL

__all__ = ["EventHub", "Subscription", "low_stock_alert", "order_key", "SETTLED_ORDER_STATUSES", "LOST"]

#: Queued for a resumable subscriber when the hub lost NOTIFYs it should have had.
LOST: Any = object()

# The statuses an order's saga stops at until someone acts again (cancel, fulfil, stock arrives).
SETTLED_ORDER_STATUSES = frozenset({"RESERVED", "REJECTED", "BACKORDERED", "CANCELLED", "FULFILLED",
                                    "PREORDERED"})


def order_key(order_id: str) -> str:
    """What a request waits on for an order to settle (not a command id: ':' is not in those)."""
    return f"order settled:{order_id}"

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscription:
    """One live subscriber; ``product_id`` / ``warehouse`` filter, None for all."""

    product_id: str | None = None
    warehouse: str | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    overflowed: bool = False
    # Its reader can catch up from the ledger (api/subscriptions.py): when the LISTEN connection
    # drops, the NOTIFYs sent meanwhile are lost, so it is dropped too (``lost``) and woken (LOST).
    resumable: bool = False
    lost: bool = False

    def wants(self, event: dict[str, Any]) -> bool:
        if self.product_id is not None and event["sku"] != self.product_id:
            return False
        return self.warehouse is None or event["warehouse"] == self.warehouse


class EventHub:
    def __init__(self, dsn: str, reconnect_s: float = 1.0) -> None:
        self.dsn = dsn
        self.reconnect_s = reconnect_s
        self._waiters: dict[str, list[asyncio.Future]] = defaultdict(list)
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="event-hub")
        await asyncio.wait_for(self.listening.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot LISTEN yet, retrying", extra={"error": str(exc)})
                await asyncio.sleep(self.reconnect_s)
                continue
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _c: closed.set())
            try:
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.listening.set()
                await closed.wait()
                log.warning("LISTEN connection lost, reconnecting")
            finally:
                self.listening.clear()
                self._lose_resumable()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    def _lose_resumable(self) -> None:
        """The LISTEN connection is gone, and the NOTIFYs until the next one with it: resumable
        subscribers are dropped and woken, to catch up from the ledger. The others carry on."""
        for sub in [s for s in self._subscriptions if s.resumable]:
            sub.lost = True
            self._subscriptions.discard(sub)
            with contextlib.suppress(asyncio.QueueFull):  # a full queue: its reader is not waiting
                sub.queue.put_nowait(LOST)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = json.loads(payload)
        if event.get("source") == "warehouse":
            self._on_ledger_event(event)
            return
        if event.get("source") == "order":
            self._on_order_event(event)
            return
        self._resolve(event)
        if not event.get("duplicate"):
            self._publish(event)
            if event.get("low_stock"):
                self._publish(low_stock_alert(event))

    def _on_ledger_event(self, event: dict[str, Any]) -> None:
        """A warehouse ledger's event answers its command, except a receipt's SpaceHeld: that
        receipt is answered by the stock event of the same command id, which follows."""
        if event["type"] != "SpaceHeld":
            self._resolve(event)

    def _on_order_event(self, event: dict[str, Any]) -> None:
        """An order's event answers its command, except a placement's OrderPlaced: a placement
        is answered once the order settles (``order_key``), by whichever event settles it."""
        if event["status"] in SETTLED_ORDER_STATUSES:
            self._resolve(event, order_key(event["order_id"]))
        if event["type"] != "OrderPlaced":
            self._resolve(event)

    def _resolve(self, event: dict[str, Any], key: str | None = None) -> None:
        for future in self._waiters.pop(key or event["command_id"], ()):
            if not future.done():
                future.set_result(event)

    def _publish(self, event: dict[str, Any]) -> None:
        for sub in list(self._subscriptions):
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:  # a slow reader is dropped, never allowed to block the hub
                sub.overflowed = True
                self._subscriptions.discard(sub)

    # ------------------------------------------------------------------------- API side
    def expect(self, command_id: str) -> asyncio.Future:
        """A future resolved with the first event of ``command_id`` (or of an ``order_key``);
        call before sending the command."""
        future = asyncio.get_running_loop().create_future()
        self._waiters[command_id].append(future)
        return future

    def forget(self, command_id: str, future: asyncio.Future) -> None:
        waiters = self._waiters.get(command_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[command_id]

    @contextlib.asynccontextmanager
    async def subscribe(self, product_id: str | None = None,
                        warehouse: str | None = None) -> AsyncIterator[Subscription]:
        sub = Subscription(product_id, warehouse)
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)


def low_stock_alert(event: dict[str, Any]) -> dict[str, Any]:
    """The message live screens get when an event took a level below its threshold (the same
    fact the stock agent publishes on inventory-alerts). It carries its event's ``offset``: it
    follows that event, in a replay too (api/subscriptions.py)."""
    alert = {"type": "LowStock", "sku": event["sku"], "warehouse": event["warehouse"],
             "available": event["on_hand"] - event["reserved"],
             "threshold": event["low_stock_threshold"], "event_id": event["event_id"],
             "occurred_at": event["occurred_at"]}
    if "offset" in event:
        alert["offset"] = event["offset"]
    return alert
