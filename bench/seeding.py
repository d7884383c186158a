"""Putting SKUs into the worker's state through the command log, and probing that it serves."""
from __future__ import annotations

import asyncio
import time

from bench.pipe import Pipe
from bench.workload import WorkloadSpec, new_id, sku_name
from streams.stock.records import AdjustStock, CreateProduct

__all__ = ["create_skus", "stock_skus", "seconds_until_serving"]


async def _bounded(calls, in_flight: int) -> list:
    gate = asyncio.Semaphore(in_flight)

    async def one(call):
        async with gate:
            return await call()
    return await asyncio.gather(*(one(c) for c in calls))


async def create_skus(pipe: Pipe, skus: list[str], in_flight: int = 2000) -> int:
    """Creates each SKU's product; returns how many were decided (created or already there)."""
    answers = await _bounded([lambda s=s: pipe.call(new_id(), s, CreateProduct(f"bench {s}"), 120)
                              for s in skus], in_flight)
    return sum(a is not None for a in answers)


async def stock_skus(pipe: Pipe, spec: WorkloadSpec) -> None:
    skus = spec.all_skus()
    created = await create_skus(pipe, skus)
    body = AdjustStock(spec.warehouse, spec.units_per_sku, "bench receipt")
    answers = await _bounded([lambda s=s: pipe.call(new_id(), s, body, 120) for s in skus], 2000)
    stocked = sum(a is not None and a.kind == "StockAdjusted" for a in answers)
    if created != len(skus) or stocked != len(skus):
        raise RuntimeError(f"seeding failed: {created} created, {stocked} stocked of {len(skus)}")


async def seconds_until_serving(pipe: Pipe, since: float, timeout_s: float = 120) -> float:
    """Seconds from ``since`` (perf_counter) until a new command is decided."""
    while time.perf_counter() - since < timeout_s:
        if await pipe.call(new_id(), sku_name("probe", int(time.time() * 1000) % 100_000),
                           CreateProduct("probe"), timeout_s=0.5):
            return time.perf_counter() - since
    raise TimeoutError(f"the worker did not serve within {timeout_s}s")
