"""The practical limit: a raw aiokafka consume -> produce loop that does no work.

It reads the benchmark's command records and writes each one back, padded (in a header) to the
size of a decision event, keyed the same, with the same consumer/producer durability as the worker
(acks=all, offsets committed by the group). What the pipeline adds on top of this loop is the
cost of deciding, remembering and persisting.

    python -m bench.raw_loop
"""
from __future__ import annotations

import asyncio
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.kafka_load import LOOP_COMMANDS, LOOP_EVENTS
from common.settings import get_settings
from schemas import event_codec
from streams.stock.records import Event, Reserved, event_id_for, event_to_avro

__all__ = ["event_size", "main"]


def event_size() -> int:
    """The encoded size of a typical decision (a reservation of one unit)."""
    command_id = "3f1e0c8a-9b7d-4e2f-8a61-5c4d3b2a1f00"
    sample = Event(event_id_for(command_id), command_id, "bench-00001", 12345, 1_700_000_000_000,
                   "default", 1000, 17, Reserved(command_id, "bench", 1), 0, 1, "bench")
    return len(event_codec().encode(event_to_avro(sample)))


async def run(stop: asyncio.Event) -> None:
    bootstrap = get_settings().kafka_bootstrap_servers
    size = event_size()
    consumer = AIOKafkaConsumer(LOOP_COMMANDS, bootstrap_servers=bootstrap, group_id="bench-raw-loop",
                                auto_offset_reset="latest", fetch_max_wait_ms=5)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=1)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for record in records:
                    # Padded to a decision's size in a header: the value stays the command, which
                    # the load decodes (a decoder refuses bytes after a record).
                    padding = b"\0" * max(0, size - len(record.value))
                    await producer.send(LOOP_EVENTS, key=record.key, value=record.value,
                                        headers=[("padding", padding)])
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
