"""The stock agent: the single writer of every SKU on its partitions.

Thin glue: decode the record, let ``StockStore`` decide against the partition's table, publish the
events. A record that cannot be decoded goes to the dead-letter topic with the reason in its
headers, and the agent carries on.
"""
from __future__ import annotations

import logging

from common.errors import InventoryError, MalformedRecordError
from schemas import command_codec
from streams.app import app, settings, stock_commands, stock_commands_dlq, stock_events, stock_table
from streams.stock.records import Command, command_from_avro, event_to_avro
from streams.stock.store import StockStore

__all__ = ["process_stock_commands", "decode_command"]

log = logging.getLogger(__name__)
_commands = command_codec()
store = StockStore(stock_table, window=settings.dedup_window)


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    data = _commands.decode(value or b"")
    try:
        command = command_from_avro(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecordError(f"command does not map onto the domain: {exc}") from exc
    if key is None or key.decode("utf-8", "replace") != command.sku:
        # The key decides the partition and so the writer: a mismatch would break single-writer.
        raise MalformedRecordError(f"record key {key!r} is not the command's SKU {command.sku!r}")
    return command


async def _dead_letter(event, reason: str) -> None:
    message = event.message
    headers = [
        ("error", reason.encode()),
        ("source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    await stock_commands_dlq.send(key=event.key, value=event.value, headers=headers)
    log.warning("dead-lettered a command record", extra={"reason": reason, "offset": message.offset,
                                                         "partition": message.partition})


@app.agent(stock_commands)
async def process_stock_commands(stream):
    async for event in stream.events():
        try:
            command = decode_command(event.key, event.value)
        except InventoryError as exc:
            await _dead_letter(event, f"{type(exc).__name__}: {exc}")
            continue
        try:
            outcome = store.handle(command)
        except Exception as exc:  # a bug must not stop the partition; the record is kept
            log.exception("command failed", extra={"command_id": command.command_id})
            await _dead_letter(event, f"{type(exc).__name__}: {exc}")
            continue
        for fact in outcome:
            await stock_events.send(key=fact.sku.encode(), value=event_to_avro(fact))
