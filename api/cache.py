"""The read cache of ``GET /inventory/{product_id}`` in Redis, invalidated by the event stream.

A read after an acknowledged write must never return the old value, so an entry is not trusted
for a time (its TTL only frees memory) but by per-SKU generations that the writer of the read
model moves (``storage/sink.py``, ``ReadCacheInvalidator``). For every SKU a batch of stock events
changes, the ledger worker, before it commits the batch to PostgreSQL:

1. adds the batch to the SKU's write lease (``inv:lease:<sku>``), then
2. increments the SKU's generation (``inv:gen:<sku>``);

and after the commit removes the batch from the lease. An entry ``inv:cache:<product_id>`` holds
the answer and the generation of every SKU it depends on (the product, its variants, a bundle's
components), read *before* the PostgreSQL query that built it, and it is stored only when none of
those SKUs had a write lease. A read serves the entry when all those generations are unchanged.

Why no entry can hide an acknowledged write W (committed at c, acknowledged after c): an entry
that misses W was built from a snapshot taken before c, so its generations were read before c.
Read before W's increment, they differ from the current ones as soon as W increments, which is
before c: never served after the acknowledgement. Read after the increment (and before c), W's
lease was held (added before the increment, removed after c): the entry was never stored. The
lease is what the plain "bump before commit" lacks: without it a reader between the increment
and the commit would store the old answer under the new generation (tests/unit/test_cache.py).

Redis is an optimisation here: when it fails or is slow, the read is served from PostgreSQL.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Collection, Protocol, Sequence, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.settings import Settings
from storage.sink import generation_key, write_lease_key

__all__ = ["InventoryCache", "CacheStore", "RedisCacheStore", "Loader", "entry_key",
           "HIT", "MISS", "MISS_STORED", "BYPASS"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Cache-Status values (RFC 9211), so tests and operators can tell how an answer was made.
HIT = "inventory; hit"
MISS_STORED = "inventory; fwd=miss; stored"
MISS = "inventory; fwd=miss"
BYPASS = "inventory; fwd=bypass"  # caching is off (a TTL of 0)

# A query that finds SKUs it did not expect (a variant created meanwhile) is repeated this many
# times more, after reading their generations; then the answer is served uncached.
_REQUERIES = 2

# The generations of some SKUs, read in one snapshot; None for a SKU with a write in flight.
Gens = dict[str, int | None]
# The PostgreSQL part of the read: the answer's JSON and the SKUs it depends on, None if unknown.
Loader = Callable[[], Awaitable[tuple[dict[str, Any], Collection[str]] | None]]


def entry_key(product_id: str) -> str:
    return f"inv:cache:{product_id}"


class CacheStore(Protocol):
    """The cache's Redis calls, behind this small interface (the unit tests use an in-memory one)."""

    async def read(self, key: str | None, skus: Sequence[str]) -> tuple[bytes | None, Gens]:
        """The entry at ``key`` (when given) and the generations of ``skus``, in one snapshot."""

    async def write(self, key: str, value: bytes, ttl_s: int) -> None:
        """Store an entry for ``ttl_s`` seconds."""


class RedisCacheStore:
    """``CacheStore`` on Redis: a read is one MULTI (GET, MGET, EXISTS per lease) round trip."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def read(self, key: str | None, skus: Sequence[str]) -> tuple[bytes | None, Gens]:
        async with self.redis.pipeline(transaction=True) as pipe:
            if key is not None:
                pipe.get(key)
            pipe.mget([generation_key(sku) for sku in skus])
            for sku in skus:
                pipe.exists(write_lease_key(sku))
            results = await pipe.execute()
        entry = results.pop(0) if key is not None else None
        gens, leased = results[0], results[1:]
        return entry, {sku: None if busy else int(gen or 0)
                       for sku, gen, busy in zip(skus, gens, leased)}

    async def write(self, key: str, value: bytes, ttl_s: int) -> None:
        await self.redis.set(key, value, ex=ttl_s)


class InventoryCache:
    """Serves an inventory answer from Redis when no SKU it depends on changed since it was built."""

    def __init__(self, store: CacheStore, ttl_s: int, timeout_s: float = 0.5) -> None:
        self.store, self.ttl_s, self.timeout_s = store, ttl_s, timeout_s

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> InventoryCache:
        return cls(RedisCacheStore(redis), settings.read_cache_ttl_s, settings.read_cache_timeout_s)

    async def get(self, product_id: str, load: Loader) -> tuple[dict[str, Any], str] | None:
        """The answer and its Cache-Status; None for an unknown product (never cached)."""
        if self.ttl_s <= 0:
            loaded = await load()
            return None if loaded is None else (loaded[0], BYPASS)
        key = entry_key(product_id)
        found = await self._lookup(key, product_id)
        if found is None:  # Redis failed: PostgreSQL answers, nothing is stored
            loaded = await load()
            return None if loaded is None else (loaded[0], MISS)
        entry, gens = found
        if entry is not None and entry["deps"] == gens:
            return entry["body"], HIT
        return await self._fill(key, load, gens)

    async def _lookup(self, key: str, product_id: str) -> tuple[dict[str, Any] | None, Gens] | None:
        """The entry, if any, and the current generations of what it depends on (of the product
        alone without an entry); None when Redis failed."""
        found = await self._call(self.store.read(key, [product_id]))
        if found is None:
            return None
        raw, gens = found
        entry = _decode(raw)
        if entry is None or entry["deps"].keys() == gens.keys():
            return entry, gens
        more = await self._call(self.store.read(None, list(entry["deps"])))
        return None if more is None else (entry, more[1])

    async def _fill(self, key: str, load: Loader, gens: Gens) -> tuple[dict[str, Any], str] | None:
        """A miss: query PostgreSQL *after* reading the generations of what the answer depends
        on, and store the answer with them unless one had a write in flight."""
        for attempt in range(1 + _REQUERIES):
            if (loaded := await load()) is None:
                return None
            body, deps = loaded
            missing = [sku for sku in deps if sku not in gens]
            if not missing:
                return body, await self._store(key, body, {sku: gens[sku] for sku in deps})
            if attempt == _REQUERIES or (more := await self._call(self.store.read(None, missing))) is None:
                break
            gens = {**gens, **more[1]}
        return body, MISS

    async def _store(self, key: str, body: dict[str, Any], deps: Gens) -> str:
        if any(gen is None for gen in deps.values()):
            return MISS
        value = json.dumps({"deps": deps, "body": body}, separators=(",", ":")).encode()
        stored = await self._call(self.store.write(key, value, self.ttl_s), done=True)
        return MISS_STORED if stored else MISS

    async def _call(self, call: Awaitable[T], done: T | None = None) -> T | None:
        """A Redis call, bounded by ``timeout_s``; None when it failed (logged): the read goes
        on without the cache. ``done`` stands for the result of a call that returns nothing."""
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("read cache unavailable, reading PostgreSQL", extra={"error": repr(exc)})
            return None
        return done if result is None else result


def _decode(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        return entry if isinstance(entry.get("deps"), dict) and "body" in entry else None
    except (ValueError, AttributeError):
        return None
