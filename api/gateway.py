"""Sends commands to Kafka and waits, bounded, for the event that decides them."""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from api.events import EventHub
from api.metrics import command_answered, command_sent
from api.observability import current_request_id
from common.logs import REQUEST_ID_HEADER
from schemas import command_codec, order_command_codec, warehouse_command_codec
from streams.stock.records import Command, CommandBody, command_to_avro
from api.events import order_key
from streams.orders.records import OrderCommand, OrderCommandBody, PlaceOrder, order_command_to_avro
from streams.topics import ORDER_COMMANDS, STOCK_COMMANDS, WAREHOUSE_COMMANDS
from streams.warehouses.records import WarehouseCommand, WarehouseCommandBody, warehouse_command_to_avro

__all__ = ["CommandGateway", "now_ms"]

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class CommandGateway:
    def __init__(self, producer: AIOKafkaProducer, hub: EventHub, timeout_s: float,
                 sender: str = "api") -> None:
        self.producer = producer
        self.hub = hub
        self.timeout_s = timeout_s
        self.sender = sender
        self._codec = command_codec()
        self._warehouse_codec = warehouse_command_codec()
        self._order_codec = order_command_codec()

    def acting_as(self, sender: str) -> "CommandGateway":
        """This gateway sending as ``sender`` (a request's principal): same producer and hub."""
        bound = copy.copy(self)
        bound.sender = sender
        return bound

    async def execute(self, command_id: str, sku: str, body: CommandBody) -> dict[str, Any] | None:
        """The deciding event of the stock command (as announced), or None if it did not come in
        time."""
        command = Command(command_id=command_id, sku=sku, issued_at=now_ms(), body=body,
                          sender=self.sender)
        return await self._send(STOCK_COMMANDS, sku, command_id, self._codec.encode(command_to_avro(command)))

    async def execute_warehouse(self, command_id: str, warehouse_id: str,
                                body: WarehouseCommandBody) -> dict[str, Any] | None:
        """The deciding event of a warehouse command: the ledger's, or for a receipt whose space
        was held, the stock event of the receipt (api/events.py); None if it did not come in time."""
        command = WarehouseCommand(command_id, warehouse_id, now_ms(), body, self.sender)
        value = self._warehouse_codec.encode(warehouse_command_to_avro(command))
        return await self._send(WAREHOUSE_COMMANDS, warehouse_id, command_id, value)

    async def execute_order(self, command_id: str, order_id: str, body: OrderCommandBody) -> dict[str, Any] | None:
        """The answer to an order command: for a placement, the event that settles the order
        (or refuses the placement); else the command's event. None if it did not come in time."""
        command = OrderCommand(command_id, order_id, now_ms(), body, self.sender)
        value = self._order_codec.encode(order_command_to_avro(command))
        settles = [order_key(order_id)] if isinstance(body, PlaceOrder) else []
        return await self._send(ORDER_COMMANDS, order_id, command_id, value, settles)

    async def _send(self, topic: str, key: str, command_id: str, value: bytes,
                    also: list[str] | None = None) -> dict[str, Any] | None:
        """Send, and wait for the first event of ``command_id`` or of any key in ``also``. The
        record carries the request's id (api/observability.py), which the workers log."""
        keys = [command_id, *(also or [])]
        outcomes = [self.hub.expect(k) for k in keys]  # registered first: the answer may be quick
        request_id = current_request_id()
        headers = None if request_id is None else [(REQUEST_ID_HEADER, request_id.encode())]
        try:
            await self.producer.send_and_wait(topic, value=value, key=key.encode(), headers=headers)
            command_sent(topic)
            done, _ = await asyncio.wait([asyncio.shield(o) for o in outcomes], timeout=self.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            command_answered(topic, decided=bool(done))
            if not done:
                log.warning("no outcome in time", extra={"command_id": command_id})
                return None
            return done.pop().result()
        finally:
            for k, outcome in zip(keys, outcomes):
                self.hub.forget(k, outcome)
