"""Rate limits per client, kept in Redis with the `limits` library (sliding window counters).

A client is a principal (a user, or an API key with its own limit or the default) or, before
anyone is authenticated (``POST /auth/token``), the client address. Every API process shares
the counters, so a limit holds across replicas. If Redis does not answer, requests pass (and a
warning is logged): the limiter protects the service, it must not take it down.
"""
from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

__all__ = ["RateLimiter", "Verdict"]

log = logging.getLogger(__name__)


class Verdict:
    __slots__ = ("allowed", "limit", "remaining", "retry_after_s")

    def __init__(self, allowed: bool, limit: int, remaining: int, retry_after_s: int) -> None:
        self.allowed, self.limit, self.remaining = allowed, limit, remaining
        self.retry_after_s = retry_after_s


@lru_cache(maxsize=256)
def _item(notation: str) -> RateLimitItem:
    return parse(notation)


class RateLimiter:
    def __init__(self, redis_url: str) -> None:
        # `limits` takes its own client (redis-py's asyncio one) from an "async+" URL.
        self.storage = RedisStorage(f"async+{redis_url}", implementation="redispy",
                                    key_prefix="ratelimit")
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, notation: str, *identity: str) -> Verdict:
        item = _item(notation)
        try:
            if await self.strategy.hit(item, *identity):
                return Verdict(True, item.amount, -1, 0)
            stats = await self.strategy.get_window_stats(item, *identity)
        except Exception as exc:  # Redis away: let the request through
            log.warning("rate limiter unavailable, request allowed", extra={"error": str(exc)})
            return Verdict(True, item.amount, -1, 0)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(False, item.amount, stats.remaining, retry_after)

    @staticmethod
    def validate(notation: str) -> str:
        """The notation if `limits` understands it; ValueError otherwise."""
        _item(notation)
        return notation
