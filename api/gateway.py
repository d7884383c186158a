"""Sends commands to Kafka and waits, bounded, for the event that decides them."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from api.events import EventHub
from schemas import command_codec
from streams.stock.records import Command, CommandBody, command_to_avro
from streams.topics import STOCK_COMMANDS

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

    async def execute(self, command_id: str, sku: str, body: CommandBody) -> dict[str, Any] | None:
        """The deciding event of the command (as announced), or None if it did not come in time."""
        command = Command(command_id=command_id, sku=sku, issued_at=now_ms(), body=body,
                          sender=self.sender)
        value = self._codec.encode(command_to_avro(command))
        outcome = self.hub.expect(command_id)  # registered first: the answer may be quick
        try:
            await self.producer.send_and_wait(STOCK_COMMANDS, value=value, key=sku.encode())
            return await asyncio.wait_for(asyncio.shield(outcome), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            log.warning("no outcome in time", extra={"command_id": command_id})
            return None
        finally:
            self.hub.forget(command_id, outcome)
