"""Load on the command log from its own process: closed-loop clients, or an open-loop rate.

    python -m bench.kafka_load --mode pipeline --clients 256 --seconds 12 --prefix b1
    python -m bench.kafka_load --mode pipeline --rate 3000 --seconds 15 --prefix b1
    python -m bench.kafka_load --mode loop --clients 256 ...   (the raw aiokafka loop's topics)

Prints one JSON object: decisions per second inside the window, timeouts, latency percentiles.
Open-loop latency is measured from each command's *scheduled* send time, so a stall in the
system shows up in the tail instead of silently slowing the sender (no coordinated omission).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import random
import time

from bench.pipe import Pipe, echo_answer, event_answer
from bench.stats import Window
from bench.workload import WorkloadSpec, Zipf, add_load_arguments, emit, new_id
from common.settings import get_settings
from streams.stock.records import Release, Reserve
from streams.topics import STOCK_COMMANDS, STOCK_EVENTS

__all__ = ["LOOP_COMMANDS", "LOOP_EVENTS", "make_pipe", "main"]

LOOP_COMMANDS = "bench-loop-commands"
LOOP_EVENTS = "bench-loop-events"


def make_pipe(mode: str, bootstrap: str) -> Pipe:
    if mode == "pipeline":
        return Pipe(bootstrap, STOCK_COMMANDS, STOCK_EVENTS, event_answer(), ledger=True)
    return Pipe(bootstrap, LOOP_COMMANDS, LOOP_EVENTS, echo_answer())


async def _pair(pipe: Pipe, spec: WorkloadSpec, sku: str, window: Window,
                sent_at: float | None = None) -> None:
    """Reserve one unit; when it is held, release it again."""
    reservation = new_id()
    answer = await pipe.call(new_id(), sku, Reserve(reservation, "bench", spec.warehouse, 1),
                             sent_at=sent_at)
    window.record(answer and answer.kind, answer.latency_s if answer else 0.0)
    if answer is None or answer.kind != "Reserved":
        return
    answer = await pipe.call(new_id(), sku, Release(reservation))
    window.record(answer and answer.kind, answer.latency_s if answer else 0.0)


async def closed_loop(pipe: Pipe, spec: WorkloadSpec, clients: int, warmup: float,
                      seconds: float, seed: int) -> Window:
    zipf = Zipf(spec.skus, spec.zipf_s)
    now = time.perf_counter()
    window = Window(now + warmup, now + warmup + seconds)

    async def client(rng: random.Random) -> None:
        while time.perf_counter() < window.end:
            await _pair(pipe, spec, spec.sku(zipf.sample(rng)), window)

    await asyncio.gather(*(client(random.Random(seed * 100_003 + i)) for i in range(clients)))
    return window


async def open_loop(pipe: Pipe, spec: WorkloadSpec, rate: float, warmup: float, seconds: float,
                    seed: int) -> Window:
    """Commands at a fixed rate: a new reservation, or the release of one held (half each)."""
    zipf, rng = Zipf(spec.skus, spec.zipf_s), random.Random(seed)
    held: collections.deque[tuple[str, str]] = collections.deque()
    start = time.perf_counter() + 0.05
    window = Window(start + warmup, start + warmup + seconds)
    tasks: set[asyncio.Task] = set()

    async def one(scheduled: float) -> None:
        if held and rng.random() < 0.5:
            sku, reservation = held.popleft()
            answer = await pipe.call(new_id(), sku, Release(reservation), sent_at=scheduled)
        else:
            sku, reservation = spec.sku(zipf.sample(rng)), new_id()
            answer = await pipe.call(new_id(), sku, Reserve(reservation, "bench", spec.warehouse, 1),
                                     sent_at=scheduled)
            if answer and answer.kind == "Reserved":
                held.append((sku, reservation))
        window.record(answer and answer.kind, answer.latency_s if answer else 0.0)

    for i in range(int(rate * (warmup + seconds))):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return window


async def run(args: argparse.Namespace) -> dict:
    spec = WorkloadSpec(prefix=args.prefix, skus=args.skus, zipf_s=args.zipf)
    pipe = make_pipe(args.mode, get_settings().kafka_bootstrap_servers)
    await pipe.start()
    try:
        if args.rate:
            window = await open_loop(pipe, spec, args.rate, args.warmup, args.seconds, args.seed)
        else:
            window = await closed_loop(pipe, spec, args.clients, args.warmup, args.seconds, args.seed)
    finally:
        await pipe.stop()
    return {"mode": args.mode, "clients": args.clients, "rate": args.rate, **window.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["pipeline", "loop"], default="pipeline")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: commands per second")
    add_load_arguments(parser)
    args = parser.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
