"""The chaos run's clients, in their own process: commands and reads, every call in a history.

    python -m chaos.clients --prefix c1 --commands 100000 --clients 96 --history h.jsonl

Each client picks, per step, a receipt, a reservation, the release or commit of one it holds, or a
read of the read model. A command is retried with the *same* command id until it is answered
(or the run gives up on it: outcome ``unknown``); the broker's acknowledgement of any attempt
marks it ``accepted``. One JSON line per finished call goes to the history file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, TextIO

import asyncpg
from aiokafka.errors import KafkaError

from bench.pipe import Pipe, event_answer
from bench.pg_baseline import asyncpg_dsn
from bench.workload import Zipf, sku_name
from common.settings import get_settings
from streams.stock.records import AdjustStock, CommandBody, Commit, Release, Reserve
from streams.topics import STOCK_COMMANDS, STOCK_EVENTS

__all__ = ["WAREHOUSES", "Call", "body_to_json", "execute", "main"]

WAREHOUSES = ("east", "west")
_REJECTIONS = {"ReservationRejected", "CommandRejected"}


@dataclass
class Call:
    op: str                      # "command" or "read"
    sku: str
    id: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False       # the broker acknowledged a send of it
    attempts: int = 0
    outcome: str = "unknown"     # ok (applied), fail (refused), unknown (no answer in time)
    kind: str = ""               # the answering event's type
    levels: list[list[Any]] = field(default_factory=list)  # reads: [warehouse, on_hand, reserved, version]
    t0: float = 0.0
    t1: float = 0.0


def body_to_json(body: CommandBody) -> dict[str, Any]:
    # Field by field: asdict deep-copies, and a product's attributes are a read-only mapping proxy.
    values = {f.name: getattr(body, f.name) for f in fields(body)}
    return {"type": type(body).__name__, **{k: dict(v) if isinstance(v, Mapping) else v
                                            for k, v in values.items()}}


async def execute(pipe: Pipe, call: Call, body: CommandBody, give_up_s: float,
                  attempt_s: float = 8.0) -> Call:
    """Sends ``body`` under ``call.id`` until it is answered or ``give_up_s`` passes."""
    call.body, call.t0 = body_to_json(body), time.time()
    deadline = time.monotonic() + give_up_s

    def accepted() -> None:
        call.accepted = True

    while time.monotonic() < deadline:
        call.attempts += 1
        try:
            answer = await pipe.call(call.id, call.sku, body, timeout_s=attempt_s, on_accepted=accepted)
        except KafkaError:
            await asyncio.sleep(1.0)  # the broker is away: same command again, same id
            continue
        if answer is not None:
            call.kind = answer.kind
            call.outcome = "fail" if answer.kind in _REJECTIONS else "ok"
            break
    call.t1 = time.time()
    return call


class Clients:
    def __init__(self, args: argparse.Namespace, pipe: Pipe, pool: asyncpg.Pool, out: TextIO) -> None:
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

    def next_body(self, rng: random.Random, sku: str, held: list[tuple[str, str]], name: str,
                  n: int) -> tuple[str, CommandBody]:
        roll = rng.random()
        if roll < 0.10:
            return sku, AdjustStock(rng.choice(WAREHOUSES), rng.randint(1, 5), "chaos receipt")
        if held and roll < 0.40:
            held_sku, reservation = held.pop(rng.randrange(len(held)))
            return held_sku, Release(reservation) if roll < 0.28 else Commit(reservation)
        # Half the holds expire on their own after a few seconds, kills and restarts included.
        ttl_ms = rng.choice((0, 0, 2_000, 5_000))
        return sku, Reserve(f"{name}-{n}", f"order-{name}", rng.choice(WAREHOUSES), rng.randint(1, 3),
                            ttl_ms)

    async def client(self, index: int) -> None:
        rng = random.Random(self.args.seed * 1_000_003 + index)
        name, held, n = f"{self.args.prefix}-c{index}", [], 0
        while True:
            sku = sku_name(self.args.prefix, self.zipf.sample(rng))
            if rng.random() < self.args.read_share:
                await self.read(sku)
                continue
            if not self.take_slot():
                return
            n += 1
            sku, body = self.next_body(rng, sku, held, name, n)
            call = await execute(self.pipe, Call("command", sku, id=f"{name}-{n}"), body, self.args.give_up_s)
            self.record(call)
            self.done += 1
            if isinstance(body, Reserve) and call.kind == "Reserved":
                held.append((sku, body.reservation_id))

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(5)
            print(json.dumps({"done": self.done, "issued": self.issued,
                              "elapsed_s": round(time.monotonic() - self.started, 1)}), flush=True)


async def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    pipe = Pipe(settings.kafka_bootstrap_servers, STOCK_COMMANDS, STOCK_EVENTS, event_answer(),
                sender="chaos", ledger=True)
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
