"""Load through the HTTP edge from its own process: each client reserves one unit, then releases it.

    python -m bench.http_load --url http://127.0.0.1:8000 --clients 256 --prefix b1

A request counts once it is answered with the decision (201/200 after the event is persisted,
or 409 when refused); a 202 (accepted, not decided in time) counts as a timeout.

The client is aiohttp (already installed with faust): with 256 connections httpx spent about
20 ms of CPU per request in its connection pool, so the load process, not the API, set the rate.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time

import aiohttp

from api.security import Role, issue_token
from bench.stats import Window
from common.settings import get_settings
from bench.workload import WorkloadSpec, Zipf, add_load_arguments, emit

__all__ = ["main"]

_DECIDED = {200: "decided", 201: "decided", 409: "refused"}


async def run(args: argparse.Namespace) -> dict:
    spec = WorkloadSpec(prefix=args.prefix, skus=args.skus, zipf_s=args.zipf)
    zipf = Zipf(spec.skus, spec.zipf_s)
    now = time.perf_counter()
    window = Window(now + args.warmup, now + args.warmup + args.seconds)

    async def post(client: aiohttp.ClientSession, path: str, body: dict | None = None) -> dict | None:
        """The JSON of a 201 answer (None otherwise), after recording the answer."""
        started = time.perf_counter()
        try:
            async with client.post(path, json=body) as response:
                data = await response.json() if response.status == 201 else None
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            window.record(None, 0.0)
            return None
        window.record(_DECIDED.get(status), time.perf_counter() - started)
        return data

    async def one_client(client: aiohttp.ClientSession, rng: random.Random) -> None:
        while time.perf_counter() < window.end:
            sku = spec.sku(zipf.sample(rng))
            created = await post(client, "/reservations",
                                 {"product_id": sku, "order_id": "bench", "quantity": 1})
            if created is not None:
                await post(client, f"/reservations/{created['reservation_id']}/release")

    connector = aiohttp.TCPConnector(limit=args.clients)
    token = issue_token(get_settings(), "bench", Role.OPERATOR)
    async with aiohttp.ClientSession(base_url=args.url, connector=connector,
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        await asyncio.gather(*(one_client(client, random.Random(args.seed * 100_003 + i))
                               for i in range(args.clients)))
    return {"mode": "http", "clients": args.clients, **window.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=64)
    add_load_arguments(parser)
    args = parser.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
