"""The chaos run's clients, in their own process: commands and reads, every call in a history.

    python -m chaos.clients --prefix c1 --commands 100000 --clients 96 --history h.jsonl

Each client picks, per step, a read of the read model or a command: mostly stock commands (a
receipt, a reservation, the release or commit of one it holds); some order commands (place an
order of 1-3 lines over the chaos SKUs, some with a preferred warehouse, some allowed to wait as
backorders; fulfil or cancel one it placed, and now and then cancel one at once, while its saga
is still in flight); and a few transfers between the two warehouses (a ``ReceiveStock`` with a
``source`` to the destination's ledger, as ``POST /warehouses/{id}/transfer`` sends it). A few
pre-orders (about 4% of the commands): incoming units announced (``AnnounceIncoming`` with an
expected date, now and then a withdrawal), reservations with ``preorder`` and orders that
``allow_preorders``; the receipts then bring the units they await. A
command is retried with the *same* command id until it is answered (or the run gives up on it:
outcome ``unknown``); the broker's acknowledgement of any attempt marks it ``accepted``. One
JSON line per finished call goes to the history file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any, Mapping, TextIO

import asyncpg
from aiokafka.errors import KafkaError

from bench.pipe import Pipe, event_answer
from bench.pg_baseline import asyncpg_dsn
from bench.workload import Zipf, sku_name
from common.settings import get_settings
from schemas import order_command_codec, order_event_codec
from streams.orders.records import (CancelOrder, FulfilOrder, OrderCommand, OrderLine, PlaceOrder,
                                    order_command_to_avro)
from streams.stock.records import AdjustStock, AnnounceIncoming, CommandBody, Commit, Release, Reserve
from streams.topics import ORDER_COMMANDS, ORDER_EVENTS, STOCK_COMMANDS, STOCK_EVENTS, WAREHOUSE_COMMANDS
from streams.warehouses.records import ReceiveStock, WarehouseCommand, warehouse_command_to_avro

__all__ = ["WAREHOUSES", "ORDER_BODIES", "Call", "ChaosPipe", "Transfer", "body_to_json", "execute", "main"]

WAREHOUSES = ("east", "west")
_REJECTIONS = {"ReservationRejected", "CommandRejected", "AllocationRejected", "Refused"}
ORDER_BODIES = (PlaceOrder, CancelOrder, FulfilOrder)
# Of the client's commands: transfers, then order commands (placements, fulfilments, cancels);
# the rest are stock commands. An order placed is cancelled at once now and then, in flight.
TRANSFER_SHARE = 0.02
ORDER_SHARE = 0.11
CANCEL_IN_FLIGHT = 0.25
# Pre-orders, about 4% of the commands: of the stock commands, announcements of incoming units
# (some withdrawn); of the reservations, pre-orders; of the orders placed, those allowing them.
ANNOUNCE_SHARE = 0.025
WITHDRAW_SHARE = 0.2
PREORDER_SHARE = 0.02
ORDER_PREORDER_SHARE = 0.12
DAY_MS = 86_400_000
_OVER = ("REJECTED", "CANCELLED", "FULFILLED")  # an order's statuses no command of its client changes


@dataclass
class Call:
    op: str                      # "command" or "read"
    sku: str                     # "" for an order's command
    id: str = ""
    key: str = ""                # the record's key when it is not the SKU: the order's id
    body: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False       # the broker acknowledged a send of it
    attempts: int = 0
    outcome: str = "unknown"     # ok (applied), fail (refused), unknown (no answer in time)
    kind: str = ""               # the answering event's type
    levels: list[list[Any]] = field(default_factory=list)  # reads: [warehouse, on_hand, reserved, version]
    t0: float = 0.0
    t1: float = 0.0


@dataclass(frozen=True, slots=True)
class Transfer:
    """Units of the call's SKU to move from ``source`` to ``destination``; its id is the call's."""

    source: str
    destination: str
    quantity: int


def _plain(value: Any) -> Any:
    # Field by field: asdict deep-copies, and a product's attributes are a read-only mapping proxy.
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):  # a product's unit cost: its text, which JSON keeps exact
        return str(value)
    return value


def body_to_json(body: Any) -> dict[str, Any]:
    return {"type": type(body).__name__, **_plain(body)}


class ChaosPipe(Pipe):
    """The bench's client of the command log, which also sends order commands (to
    ``order-commands``, answered by the order's event of the same command id) and transfers (to
    the destination's ledger, answered by the stock decision of the transfer, or the ledger's
    refusal), and keeps the last status of each order it has seen."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, STOCK_COMMANDS, STOCK_EVENTS, event_answer(), sender="chaos", ledger=True)
        self.readers[ORDER_EVENTS] = self._order_answer
        self.order_codec, self.order_events = order_command_codec(), order_event_codec()
        self.statuses: dict[str, str] = {}

    def _order_answer(self, value: bytes) -> tuple[str, str]:
        record = self.order_events.decode(value)
        if record["kind"] != "Refused":
            self.statuses[record["order_id"]] = record["status"]
        return record["command_id"], record["kind"]

    def route(self, command_id: str, key: str, body: Any) -> tuple[str, str, bytes]:
        now = int(time.time() * 1000)
        if isinstance(body, ORDER_BODIES):
            command = OrderCommand(command_id, key, now, body, self.sender)
            return ORDER_COMMANDS, key, self.order_codec.encode(order_command_to_avro(command))
        if isinstance(body, Transfer):
            receipt = ReceiveStock(key, body.quantity, "chaos transfer", source=body.source)
            command = WarehouseCommand(command_id, body.destination, now, receipt, self.sender)
            value = self.ledger_codec.encode(warehouse_command_to_avro(command))
            return WAREHOUSE_COMMANDS, body.destination, value
        return super().route(command_id, key, body)


async def execute(pipe: Pipe, call: Call, body: Any, give_up_s: float,
                  attempt_s: float = 8.0) -> Call:
    """Sends ``body`` under ``call.id`` until it is answered or ``give_up_s`` passes."""
    call.body, call.t0 = body_to_json(body), time.time()
    deadline = time.monotonic() + give_up_s

    def accepted() -> None:
        call.accepted = True

    while time.monotonic() < deadline:
        call.attempts += 1
        try:
            answer = await pipe.call(call.id, call.key or call.sku, body, timeout_s=attempt_s,
                                     on_accepted=accepted)
        except KafkaError:
            await asyncio.sleep(1.0)  # the broker is away: same command again, same id
            continue
        if answer is not None:
            call.kind = answer.kind
            call.outcome = "fail" if answer.kind in _REJECTIONS else "ok"
            break
    call.t1 = time.time()
    return call


@dataclass
class Mine:
    """One client's own: reservations it holds (SKU, id), orders it placed and may still fulfil
    or cancel, and one to cancel with its next command."""

    name: str
    n: int = 0
    held: list[tuple[str, str]] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    cancel_now: str = ""


class Clients:
    def __init__(self, args: argparse.Namespace, pipe: ChaosPipe, pool: asyncpg.Pool, out: TextIO) -> None:
        self.args, self.pipe, self.pool, self.out = args, pipe, pool, out
        self.zipf = Zipf(args.skus, args.zipf)
        self.issued = 0
        self.done = 0
        self.started = time.monotonic()

    def record(self, call: Call) -> None:
        self.out.write(json.dumps(asdict(call), separators=(",", ":")) + "\n")

    def take_slot(self) -> bool:
        if self.issued >= self.args.commands:
            return False
        self.issued += 1
        return True

    async def read(self, sku: str) -> None:
        call = Call("read", sku, t0=time.time())
        rows = await self.pool.fetch(
            "SELECT warehouse, on_hand, reserved, version FROM inventory_levels WHERE sku = $1", sku)
        call.levels = [[r["warehouse"], r["on_hand"], r["reserved"], r["version"]] for r in rows]
        call.outcome, call.t1 = "ok", time.time()
        self.record(call)

    def sku(self, rng: random.Random) -> str:
        return sku_name(self.args.prefix, self.zipf.sample(rng))

    def next_call(self, rng: random.Random, sku: str, mine: Mine) -> tuple[Call, Any]:
        mine.n += 1
        call_id = f"{mine.name}-{mine.n}"
        if mine.cancel_now:  # its saga has only begun: some lines are on their way to their SKUs
            order_id, mine.cancel_now = mine.cancel_now, ""
            return Call("command", "", call_id, key=order_id), CancelOrder("cancelled in flight")
        roll = rng.random()
        if roll < TRANSFER_SHARE:
            source, destination = rng.sample(WAREHOUSES, 2)
            return Call("command", sku, call_id), Transfer(source, destination, rng.randint(1, 3))
        if roll < TRANSFER_SHARE + ORDER_SHARE:
            return self.order_call(rng, mine, call_id)
        sku, body = self.stock_body(rng, sku, mine, call_id)
        return Call("command", sku, call_id), body

    def stock_body(self, rng: random.Random, sku: str, mine: Mine, call_id: str) -> tuple[str, CommandBody]:
        roll = rng.random()
        if roll < ANNOUNCE_SHARE:
            return sku, self.announce(rng)
        if roll < 0.10:
            return sku, AdjustStock(rng.choice(WAREHOUSES), rng.randint(1, 5), "chaos receipt")
        if mine.held and roll < 0.40:
            held_sku, reservation = mine.held.pop(rng.randrange(len(mine.held)))
            return held_sku, Release(reservation) if roll < 0.28 else Commit(reservation)
        # Half the holds expire on their own after a few seconds, kills and restarts included.
        ttl_ms = rng.choice((0, 0, 2_000, 5_000))
        return sku, Reserve(call_id, f"order-{mine.name}", rng.choice(WAREHOUSES), rng.randint(1, 3), ttl_ms,
                            preorder=rng.random() < PREORDER_SHARE)

    @staticmethod
    def announce(rng: random.Random) -> AnnounceIncoming:
        """Units expected in a few days; now and then a withdrawal of some (refused beyond the
        units nobody pre-ordered)."""
        if rng.random() < WITHDRAW_SHARE:
            return AnnounceIncoming(rng.choice(WAREHOUSES), -rng.randint(1, 3))
        expected_at = int(time.time() * 1000) + rng.randint(1, 14) * DAY_MS
        return AnnounceIncoming(rng.choice(WAREHOUSES), rng.randint(2, 8), expected_at)

    def order_call(self, rng: random.Random, mine: Mine, call_id: str) -> tuple[Call, Any]:
        """Fulfil (if reserved) or cancel an order the client placed, or place a new one."""
        mine.orders = [o for o in mine.orders if self.pipe.statuses.get(o) not in _OVER]
        if mine.orders and rng.random() < 0.45:
            order_id = mine.orders.pop(rng.randrange(len(mine.orders)))
            reserved = self.pipe.statuses.get(order_id) == "RESERVED"
            body = FulfilOrder() if reserved and rng.random() < 0.7 else CancelOrder("changed my mind")
            return Call("command", "", call_id, key=order_id), body
        return Call("command", "", call_id, key=call_id), self.place(rng)

    def place(self, rng: random.Random) -> PlaceOrder:
        skus = sorted({self.sku(rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))})  # a SKU on one line only
        lines = tuple(OrderLine(sku, rng.randint(1, 4)) for sku in skus)
        return PlaceOrder(f"customer-{rng.randrange(50)}", lines,
                          preferred_warehouse=rng.choice(("", "", *WAREHOUSES)),  # half prefer one
                          allow_backorders=rng.random() < 0.3, strategy=rng.choice(("priority", "most_stock")),
                          priority=rng.choice(((), WAREHOUSES, WAREHOUSES[::-1])),
                          allow_preorders=rng.random() < ORDER_PREORDER_SHARE)

    def remember(self, rng: random.Random, mine: Mine, call: Call, body: Any) -> None:
        if isinstance(body, Reserve) and call.kind == "Reserved":
            mine.held.append((call.sku, body.reservation_id))
        if isinstance(body, PlaceOrder) and call.kind == "OrderPlaced":
            mine.orders.append(call.key)
            if rng.random() < CANCEL_IN_FLIGHT:
                mine.cancel_now = call.key

    async def client(self, index: int) -> None:
        rng = random.Random(self.args.seed * 1_000_003 + index)
        mine = Mine(f"{self.args.prefix}-c{index}")
        while True:
            sku = self.sku(rng)
            if rng.random() < self.args.read_share:
                await self.read(sku)
                continue
            if not self.take_slot():
                return
            call, body = self.next_call(rng, sku, mine)
            await execute(self.pipe, call, body, self.args.give_up_s)
            self.record(call)
            self.done += 1
            self.remember(rng, mine, call, body)

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(5)
            print(json.dumps({"done": self.done, "issued": self.issued,
                              "elapsed_s": round(time.monotonic() - self.started, 1)}), flush=True)


async def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    pipe = ChaosPipe(settings.kafka_bootstrap_servers)
    await pipe.start()
    pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=2, max_size=8)
    try:
        with open(args.history, "a") as out:
            clients = Clients(args, pipe, pool, out)
            reporter = asyncio.create_task(clients.progress())
            await asyncio.gather(*(clients.client(i) for i in range(args.clients)))
            reporter.cancel()
            print(json.dumps({"done": clients.done, "issued": clients.issued, "finished": True}), flush=True)
    finally:
        await pool.close()
        await pipe.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=96)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--zipf", type=float, default=1.2)
    parser.add_argument("--read-share", type=float, default=0.05)
    parser.add_argument("--give-up-s", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--history", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
