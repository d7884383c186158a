"""The read cache's logic (api/cache.py) over an in-memory model of its Redis calls and of the
ledger's invalidation (storage/sink.py), and the sink's order of invalidation and commit.

The model: ``World`` holds the committed read model (a counter per SKU that only grows), the
generations and write leases, and the cache entries. A ``Scheduler`` runs readers and a writer as
tasks that stop before each step touching Redis or PostgreSQL; a test (or Hypothesis) picks who
moves next. The property: a read that starts after a write was committed (acknowledged) returns
a value at least as new for every SKU its answer shows.
"""
from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from api.cache import BYPASS, HIT, MISS, MISS_STORED, InventoryCache, entry_key
from storage.sink import EventSink, cached_skus
from streams.stock.records import CommandRejected, Event, ProductCreated, RejectReason, StockAdjusted

# --------------------------------------------------------------------------------- the model
# Products: A and C plain, B a bundle of A and C, P a product whose variant V may be created.
BUNDLE = {"B": ("A", "C")}


class World:
    """PostgreSQL (committed values), Redis (generations, leases, entries) and the ledger's
    invalidation steps, as ``ReadCacheInvalidator`` does them; ``leases=False`` is the design
    without write leases (bump before commit only)."""

    def __init__(self, leases: bool = True, gate: Callable[[], Any] | None = None) -> None:
        self.values = {"A": 0, "C": 0, "P": 0, "V": 0}
        self.variants: list[str] = []
        self.gens: dict[str, int] = {}
        self.leased: dict[str, set[str]] = {}
        self.entries: dict[str, bytes] = {}
        self.leases, self.gate = leases, gate
        self.fail = False
        self.loads = 0

    async def _step(self) -> None:
        if self.gate is not None:
            await self.gate()

    # -- CacheStore
    async def read(self, key: str | None, skus: Sequence[str]):
        await self._step()
        if self.fail:
            raise RedisConnectionError("down")
        entry = self.entries.get(key) if key is not None else None
        return entry, {s: None if self.leased.get(s) else self.gens.get(s, 0) for s in skus}

    async def write(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._step()
        if self.fail:
            raise RedisConnectionError("down")
        self.entries[key] = value

    # -- PostgreSQL: the answer and its SKUs, from one snapshot
    def answer(self, product_id: str) -> tuple[dict[str, Any], set[str]] | None:
        if product_id in BUNDLE:
            deps = {product_id, *BUNDLE[product_id]}
        elif product_id in self.values:
            deps = {product_id, *(self.variants if product_id == "P" else ())}
        else:
            return None
        return {sku: self.values.get(sku, 0) for sku in sorted(deps)}, deps

    def loader(self, product_id: str):
        async def load():
            await self._step()
            self.loads += 1
            return self.answer(product_id)
        return load

    # -- the ledger's batch: begin (lease, then generation), commit, end (release)
    def begin(self, batch: str, skus: set[str]) -> None:
        for sku in skus:
            if self.leases:
                self.leased.setdefault(sku, set()).add(batch)
            self.gens[sku] = self.gens.get(sku, 0) + 1

    def commit(self, write: str) -> None:
        if write == "create V":
            self.variants.append("V")
        else:
            self.values[write] += 1

    def end(self, batch: str, skus: set[str]) -> None:
        for sku in skus:
            self.leased.get(sku, set()).discard(batch)


def changed_skus(write: str) -> set[str]:
    """What ``cached_skus`` gives for the write's events: a variant's creation also its parent."""
    return {"V", "P"} if write == "create V" else {write}


class Scheduler:
    """Runs actors as tasks, each stopping at ``gate()`` until it is chosen to move."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future] = {}

    async def gate(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting[asyncio.current_task().get_name()] = future
        await future

    async def run(self, actors: dict[str, Any], choose: Callable[[list[str]], str]) -> None:
        tasks = [asyncio.create_task(coro, name=name) for name, coro in actors.items()]
        while True:
            for _ in range(1000):  # until every actor waits at a gate or is done
                if all(t.done() or t.get_name() in self.waiting for t in tasks):
                    break
                await asyncio.sleep(0)
            else:
                raise AssertionError("an actor neither waits nor finishes")
            for task in tasks:
                if task.done():
                    task.result()  # an actor's failure fails the test
            if not self.waiting:
                return
            self.waiting.pop(choose(sorted(self.waiting))).set_result(None)


def scenario(world: World, sched: Scheduler, writes: list[str], reads: dict[str, list[str]]):
    """The actors: one writer doing ``writes`` in order, and readers each reading its products in
    order; each read is checked against what was committed when it started."""
    # No wall-clock bound on the fake Redis: the gates hold calls for as long as the schedule
    # says, and a loaded machine must not turn that into a timeout (a different path on replay).
    cache = InventoryCache(world, ttl_s=300, timeout_s=3600)
    served: list[tuple[str, str]] = []

    async def writer():
        for n, write in enumerate(writes):
            batch, skus = f"batch-{n}", changed_skus(write)
            await sched.gate()
            world.begin(batch, skus)
            await sched.gate()
            world.commit(write)  # the NOTIFY: acknowledged from here on
            await sched.gate()
            world.end(batch, skus)

    async def reader(products: list[str]):
        for product_id in products:
            await sched.gate()
            committed, _ = world.answer(product_id)  # acknowledged before this read started
            body, status = await cache.get(product_id, world.loader(product_id))
            served.append((product_id, status))
            for sku, value in committed.items():
                assert body.get(sku, -1) >= value, (product_id, sku, body, committed, status)

    actors = {"writer": writer(), **{name: reader(products) for name, products in reads.items()}}
    return actors, served


def run(world: World, writes: list[str], reads: dict[str, list[str]], choose) -> list[tuple[str, str]]:
    sched = Scheduler()
    world.gate = sched.gate
    actors, served = scenario(world, sched, writes, reads)
    asyncio.run(sched.run(actors, choose))
    return served


def scripted(script: list[str]) -> Callable[[list[str]], str]:
    """Moves the actors in ``script``'s order (an actor that is done is skipped), then any."""
    script = list(script)

    def choose(ready: list[str]) -> str:
        while script:
            name = script.pop(0)
            if name in ready:
                return name
        return ready[0]
    return choose


# ------------------------------------------------------------------------ the interleavings
PRODUCTS = st.sampled_from(["A", "B", "P", "A", "P"])


@settings(max_examples=400, deadline=None)
@given(data=st.data(),
       writes=st.lists(st.sampled_from(["A", "C", "V", "create V"]), min_size=1, max_size=5),
       reads=st.lists(st.lists(PRODUCTS, min_size=1, max_size=4), min_size=1, max_size=3))
def test_no_read_that_starts_after_a_commit_is_older_than_it_whatever_the_interleaving(data, writes, reads):
    served = run(World(), writes, {f"reader-{i}": r for i, r in enumerate(reads)},
                 lambda ready: data.draw(st.sampled_from(ready)))
    assert len(served) == sum(map(len, reads))


def stale_schedule() -> list[str]:
    # The writer leases and bumps A; a reader reads the generations, queries PostgreSQL (A not
    # committed yet) and stores; the writer commits (acknowledged) and ends; a second read.
    return ["writer", "r1", "r1", "r1", "r1", "writer", "writer", "r2"]


def test_an_answer_read_between_a_bump_and_its_commit_is_not_stored():
    world = World()
    served = run(world, ["A"], {"r1": ["A"], "r2": ["A"]}, scripted(stale_schedule()))
    assert served == [("A", MISS), ("A", MISS_STORED)]


def test_without_write_leases_that_answer_would_be_served_stale_after_the_acknowledgement():
    """Why the ledger leases a SKU besides bumping its generation (api/cache.py): bumping only
    before the commit lets the reader above store the old answer under the new generation."""
    with pytest.raises(AssertionError, match=r"\('A', 'A', \{'A': 0\}, \{'A': 1\}, 'inventory; hit'\)"):
        run(World(leases=False), ["A"], {"r1": ["A"], "r2": ["A"]}, scripted(stale_schedule()))


# ------------------------------------------------------------------------ hit, miss, store
def get(cache: InventoryCache, world: World, product_id: str):
    return asyncio.run(cache.get(product_id, world.loader(product_id)))


def test_a_second_read_is_a_hit_until_a_dependency_moves():
    world = World()
    cache = InventoryCache(world, ttl_s=300)
    assert get(cache, world, "B") == ({"A": 0, "B": 0, "C": 0}, MISS_STORED)
    assert get(cache, world, "B") == ({"A": 0, "B": 0, "C": 0}, HIT)
    assert json.loads(world.entries[entry_key("B")])["deps"] == {"A": 0, "B": 0, "C": 0}
    world.begin("b1", {"C"})
    world.commit("C")
    assert get(cache, world, "B") == ({"A": 0, "B": 0, "C": 1}, MISS)  # C still leased
    world.end("b1", {"C"})
    assert get(cache, world, "B") == ({"A": 0, "B": 0, "C": 1}, MISS_STORED)
    assert get(cache, world, "B")[1] == HIT
    assert world.loads == 4  # the first miss queried twice: B's components were not expected


def test_a_dependency_found_by_the_query_is_read_and_the_query_repeated():
    world = World()
    world.variants.append("V")
    cache = InventoryCache(world, ttl_s=300)
    assert get(cache, world, "P") == ({"P": 0, "V": 0}, MISS_STORED)
    assert world.loads == 2  # P alone was expected; V's generation read, then queried again
    assert get(cache, world, "P") == ({"P": 0, "V": 0}, HIT)


def test_answers_whose_dependencies_keep_changing_are_served_uncached_after_three_queries():
    world = World()
    cache = InventoryCache(world, ttl_s=300)

    async def load():
        world.loads += 1
        return {"n": world.loads}, {"P", f"V{world.loads}"}  # a new variant at every query
    assert asyncio.run(cache.get("P", load)) == ({"n": 3}, MISS)
    assert world.loads == 3 and not world.entries


def test_an_unknown_product_is_not_cached():
    world = World()
    cache = InventoryCache(world, ttl_s=300)
    assert get(cache, world, "NOPE") is None
    assert not world.entries


def test_redis_failing_serves_postgresql_uncached():
    world = World()
    cache = InventoryCache(world, ttl_s=300)
    get(cache, world, "A")
    world.fail = True
    assert get(cache, world, "A") == ({"A": 0}, MISS)
    world.fail = False
    world.values["A"] = 5  # as if its change had been missed: nothing is trusted after a failure
    world.gens["A"] = 1
    assert get(cache, world, "A") == ({"A": 5}, MISS_STORED)


def test_a_slow_redis_is_given_up_after_the_timeout():
    world = World()

    async def hang():
        await asyncio.Event().wait()
    world.gate = hang
    cache = InventoryCache(world, ttl_s=300, timeout_s=0.01)

    async def load():
        return {"A": 0}, {"A"}
    assert asyncio.run(cache.get("A", load)) == ({"A": 0}, MISS)


def test_a_ttl_of_zero_bypasses_the_cache():
    world = World()
    cache = InventoryCache(world, ttl_s=0)
    assert get(cache, world, "A") == ({"A": 0}, BYPASS)
    assert get(cache, world, "A") == ({"A": 0}, BYPASS)
    assert not world.entries


def test_an_unreadable_entry_is_a_miss():
    world = World()
    world.entries[entry_key("A")] = b"not json"
    assert get(InventoryCache(world, ttl_s=300), world, "A") == ({"A": 0}, MISS_STORED)


# ------------------------------------------------------------------------- the sink's side
def event(sku: str, body, n: int = 1) -> Event:
    return Event(f"e-{sku}-{n}", f"c-{sku}-{n}", sku, n, 1_700_000_000_000, "", 0, 0, body)


def test_the_cached_skus_of_a_batch_are_its_events_and_a_new_variants_parent_not_rejections():
    events = [event("A", StockAdjusted(1, "r")), event("V", ProductCreated("v", parent="P")),
              event("B", ProductCreated("b", components={"A": 1})),
              event("X", CommandRejected("AdjustStock", RejectReason.INSUFFICIENT_STOCK))]
    assert cached_skus(events) == {"A", "V", "P", "B"}


class FakeEngine:
    """Records the transactions' outcomes (PostgreSQL's statements are the integration tests')."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @asynccontextmanager
    async def begin(self):
        async def execute(_stmt, params=None):
            if isinstance(params, dict) and "n" in params:  # the batch's ledger positions
                return SimpleNamespace(scalars=lambda: list(range(1, params["n"] + 1)))
            rows = params if isinstance(params, list) else []
            return SimpleNamespace(scalars=lambda: [r["event_id"] for r in rows if "event_id" in r])
        try:
            yield SimpleNamespace(execute=execute)
        except BaseException:
            self.log.append("rollback")
            raise
        self.log.append("commit")


class FakeInvalidator:
    def __init__(self, log: list[str], failures: int) -> None:
        self.log, self.failures = log, failures

    async def begin(self, batch: str, skus) -> None:
        if self.failures:
            self.failures -= 1
            self.log.append("begin failed")
            raise RedisConnectionError("Redis down")
        self.log.append(f"begin {sorted(skus)}")

    async def end(self, batch: str) -> None:
        self.log.append("end")


def test_the_sink_invalidates_before_the_commit_and_commits_nothing_while_redis_fails():
    log: list[str] = []
    sink = EventSink(FakeEngine(log), retry_s=0, cache=FakeInvalidator(log, failures=2))
    asyncio.run(sink.write([event("A", StockAdjusted(1, "r")), event("V", ProductCreated("v", parent="P"))]))
    assert log == ["begin failed", "rollback", "begin failed", "rollback", "begin ['A', 'P', 'V']",
                   "commit", "end"]
