"""The clock in the log: each worker writes a ``Tick`` into every stock-commands partition it owns.

Reservations expire when the stock agent reads a tick at or after their deadline
(``store.py``), never by a wall-clock check inside a decision; so a replay of the log expires
exactly the same reservations at the same points. A tick is a command on the pseudo-SKU
``__clock__`` sent to an explicit partition; several ticks (two owners around a rebalance, a
redelivery) are harmless: a tick only expires what is due by its own time.
"""
from __future__ import annotations

import logging
import time

from schemas import command_codec
from streams.app import app, settings
from streams.stock.records import CLOCK_KEY, Command, Tick, command_to_avro
from streams.topics import STOCK_COMMANDS

__all__ = ["tick_record", "write_ticks"]

log = logging.getLogger(__name__)
_commands = command_codec()


def tick_record(partition: int, at_ms: int) -> bytes:
    command = Command(f"tick:{partition}:{at_ms}", CLOCK_KEY, at_ms, Tick(), "clock")
    return _commands.encode(command_to_avro(command))


@app.timer(interval=settings.expiry_tick_s)
async def write_ticks() -> None:
    partitions = sorted(tp.partition for tp in app.consumer.assignment()
                        if tp.topic == STOCK_COMMANDS)
    now = int(time.time() * 1000)
    try:
        for partition in partitions:
            await app.producer.send(STOCK_COMMANDS, CLOCK_KEY.encode(), tick_record(partition, now),
                                    partition, None, None)
    except Exception as exc:  # the broker is away: the next tick covers this one's deadlines
        log.warning("could not write the clock's ticks", extra={"error": repr(exc)})
