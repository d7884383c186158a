"""A seeded, deterministic simulation of the stock core: clients, partition logs, crashing workers.

Everything is driven by one ``random.Random(seed)``: no clock, no threads, no I/O, so a seed
replays exactly; a failure prints the seed, the pytest command that replays it, the scenario and
the last steps. ``SIM_SEEDS=5000 pytest tests/unit/test_simulation.py`` is a longer soak.

The model
---------
- **Clients** append commands to the partition logs (a SKU's partition is fixed) in a random
  interleaving: CreateProduct, AdjustStock (receipts with the hold of their warehouse space, as
  its capacity ledger sends them, a few without one, removals, invalid ones), Reserve (two
  warehouses, fresh and reused reservation ids, some with a TTL), Release and Commit (of live,
  ended, foreign and unknown reservations), low-stock thresholds (invalid ones included), some
  for a *ghost* SKU that nobody creates. Time is the client's step count (``issued_at``).
- **The clock** appends a ``Tick`` to a partition now and then, as the worker's timer does:
  every reservation due by then expires, in deadline order. They also retry: re-append
  an earlier command with the same command id, sometimes much later, sometimes re-stamped (a
  new ``issued_at``, as a retry through the API with the same Idempotency-Key would be).
- **Logs**: one list of entries per partition, the Kafka topic partition the workers consume.
- **Workers**, one per partition, consume their log in order through ``StockStore`` over a
  ``ChangelogTable``: a dict that queues every write and delete, in order, for the changelog.
  ``commit`` flushes the queue to the changelog and then commits the offset, so a committed
  offset only ever covers commands whose writes are all durable; a worker commits at random and
  at the latest every ``max_uncommitted`` commands (faust's commit interval).
- **A crash** loses the worker's memory. Of the writes queued since the last flush, some
  *prefix* reached the changelog (one partition's records are sent in order, so a crash can cut
  through a command's writes but never reorders them). It strikes at a random moment, or while
  the command just handled is still being written (then the cut falls inside its writes). The
  successor rebuilds the table by replaying the changelog and resumes at the committed offset:
  the commands after it are redelivered, some already written in full or in part. Every answer
  a worker gave counts as emitted: it may have reached ``stock-events`` before the crash.
- **The reference** (``Reference``) is the specification: each distinct command once, in order
  of first appearance, decided by ``logic.decide``/``evolve`` on a fresh state and cross-checked
  by ``TinySku``, an independent restatement of the rules (low-stock crossings included); a tick is the ``Expire`` of every
  pending reservation of its partition due by its time, in deadline order. It includes what store.py says of its
  memory: per SKU only the last ``window`` recorded commands are remembered, a reservation is
  forgotten with the command that ended it, and a command on a SKU that does not exist is not
  recorded at all.
- **The store's promise** is to de-duplicate a command while it is in the window. The clients
  retry only so that every later delivery (retry, or redelivery after a crash) comes while the
  command is still remembered; ``Checker.contract`` verifies that for every delivery and, if it
  was broken, reports a bug of this test rather than of the store. Windows are small (5-20) in
  some seeds, so that eviction runs, and the production default in the others.

The checks (``Checker``): every answer to a command id equals the reference's events (so all
answers to it are equal); the final tables equal the reference and the table of a clean run (no
crash, no duplicate); never negative, never oversold; reserved equals the pending reservations;
the deltas of the distinct accepted events add up to the levels; a sink that upserts by event
id holds each accepted command once, with identical content at every emission and gap-free
versions. Scenario variations that once exposed a store bug are drawn per seed
(``Scenario.draw``).

Extending: the order saga (a later issue) plugs in as another sender in ``Clients`` (its commands
go to the same logs), a reaction to the emitted events in ``Simulation._deliver``, its own state
in ``Reference`` and its invariants in ``Checker``.
"""
from __future__ import annotations

import bisect
import json
import os
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any

import pytest

from streams.stock.logic import decide, fold
from streams.stock.records import (
    AdjustStock,
    Command,
    CommandBody,
    Commit,
    Committed,
    CLOCK_KEY,
    CreateProduct,
    Event,
    Expire,
    Expired,
    Release,
    Released,
    Reservation,
    ReservationState,
    Reserve,
    SetLowStockThreshold,
    SkuState,
    Tick,
    event_id_for,
)
from streams.stock.store import StockStore, expire_id

TEST_FILE = "tests/unit/test_simulation.py"
SEEDS = range(int(os.environ.get("SIM_SEEDS", "100")))  # a soak: SIM_SEEDS=5000 pytest ...
WAREHOUSES = ("north", "south")
LARGE_WINDOW = 10_000  # the production default: nothing is evicted in a simulation this size


class Anomaly(AssertionError):
    """A check failed: the message says which and on what."""


# ------------------------------------------------------------------------------- scenario
@dataclass(frozen=True)
class Scenario:
    seed: int
    skus: tuple[str, ...]  # products the clients create
    ghosts: tuple[str, ...]  # SKUs nobody creates
    partitions: int
    clients: int
    window: int  # the store's dedup window, per SKU
    max_uncommitted: int  # a worker commits at the latest after this many commands
    ticks: int  # scheduler steps while the clients still send
    crash_rate: float  # per scheduler step: a crash at a random moment
    mid_command_crash: float  # per command: a crash while its writes are still being sent
    crash_budget: int
    tick_rate: float = 0.05  # per client step: the clock writes a tick into a partition
    # Drawn per seed (each once hid a store bug):
    early_commands: bool = False  # commands for a SKU before its CreateProduct is in the log
    shared_reservation_ids: bool = False  # one reservation id used on two SKUs

    @classmethod
    def draw(cls, seed: int, rng: Random, **overrides: Any) -> Scenario:
        window = LARGE_WINDOW if rng.random() < 0.4 else rng.randint(5, 20)
        most = 12 if window == LARGE_WINDOW else max(1, window // 3)
        skus = tuple(f"SKU-{i}" for i in range(rng.randint(3, 5)))
        drawn = cls(seed, skus, ("GHOST",), rng.randint(1, 2), rng.randint(2, 4), window,
                    rng.randint(1, most), rng.randint(250, 400), rng.uniform(0.02, 0.08),
                    rng.uniform(0.02, 0.1), rng.randint(5, 30))
        shared = rng.random() < 0.5
        return replace(drawn, shared_reservation_ids=shared, early_commands=rng.random() < 0.5,
                       **overrides)

    def partition_of(self, sku: str) -> int:
        return (self.skus + self.ghosts).index(sku) % self.partitions


@dataclass(frozen=True)
class Entry:
    """One record of a partition log; ``first``: the offset of its command's first record, or -1."""

    command: Command
    first: int

    @property
    def fresh(self) -> bool:
        return self.first < 0


# -------------------------------------------------------------------------------- clients
class Clients:
    """The senders: new commands (invalid ones included) and retries of their earlier ones."""

    def __init__(self, rng: Random, scenario: Scenario, logs: list[list[Entry]]) -> None:
        self.rng, self.scenario, self.logs = rng, scenario, logs
        self.created: set[str] = set()
        self.reservation_ids: dict[str, list[str]] = defaultdict(list)  # per SKU, in use
        self.sent: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (partition, offset)
        self.fresh: dict[str, list[int]] = defaultdict(list)  # per SKU: offsets of new commands
        self.deadlines: dict[str, list[int]] = defaultdict(list)  # per SKU: of holds with a TTL
        self.ticks: dict[int, list[tuple[int, int]]] = defaultdict(list)  # (offset, time)
        self.count = 0

    def send(self) -> str:
        """One client appends one command; a line for the journal."""
        self.count += 1
        client = f"client-{self.rng.randrange(self.scenario.clients)}"
        old = self._retry(client) if self.rng.random() < 0.2 else None
        if old is not None:
            partition, offset, entry = old
            return self._append(partition, self._restamp(entry.command), offset, client)
        sku = self._pick_sku()
        command = Command(f"{client}/{self.count}", sku, self.count, self._body(sku), client)
        return self._append(self.scenario.partition_of(sku), command, -1, client)

    def _append(self, partition: int, command: Command, first: int, client: str) -> str:
        log = self.logs[partition]
        if first < 0:
            self.fresh[command.sku].append(len(log))
            self.sent[client].append((partition, len(log)))
        log.append(Entry(command, first))
        kind = "new" if first < 0 else f"retry of offset {first}"
        return f"p{partition}@{len(log) - 1}: {kind} {command}"

    def _retry(self, client: str) -> tuple[int, int, Entry] | None:
        """An earlier command of this client that the store still remembers, whatever comes."""
        eligible = [(p, o) for p, o in self.sent[client] if self._within_window(p, o)]
        if not eligible:
            return None
        partition, offset = self.rng.choice(eligible)
        return partition, offset, self.logs[partition][offset]

    def _within_window(self, partition: int, offset: int) -> bool:
        """Would a retry appended now still be remembered by the store when it is handled?

        The SKU's new commands since ``offset``, plus up to ``max_uncommitted`` later ones that a
        redelivery may find already written, must stay within the window (counted per SKU)."""
        sku = self.logs[partition][offset].command.sku
        offsets = self.fresh[sku]
        since = len(offsets) - bisect.bisect_right(offsets, offset)
        # Expiries are recorded as the SKU's commands too: any hold not yet due at the last
        # tick before ``offset`` may expire after it.
        ticked = max((at for o, at in self.ticks[partition] if o < offset), default=-1)
        since += sum(1 for deadline in self.deadlines[sku] if deadline > ticked)
        return since + self.scenario.max_uncommitted < self.scenario.window

    def _restamp(self, command: Command) -> Command:
        restamp = self.rng.random() < 0.5
        return replace(command, issued_at=self.count) if restamp else command

    def _pick_sku(self) -> str:
        if self.rng.random() < 0.08:
            return self.rng.choice(self.scenario.ghosts)
        return self.rng.choice(self.scenario.skus)

    def _body(self, sku: str) -> CommandBody:
        if sku in self.scenario.skus and sku not in self.created:
            if not self.scenario.early_commands or self.rng.random() < 0.3:
                return self._create(sku)
        kind = self.rng.choices(["create", "adjust", "reserve", "release", "commit", "threshold"],
                                weights=[1, 7, 7, 3, 3, 1])[0]
        return getattr(self, f"_{kind}")(sku)

    def _create(self, sku: str) -> CreateProduct:
        # An empty name on a SKU that may not exist yet is only for the known-bug scenario.
        may_fail = sku in self.created or self.scenario.early_commands
        if sku in self.scenario.ghosts or (may_fail and self.rng.random() < 0.3):
            return CreateProduct("  ")
        self.created.add(sku)
        return CreateProduct(f"Product {sku}", "simulated", "sim")

    def _warehouse(self) -> str:
        return "" if self.rng.random() < 0.03 else self.rng.choice(WAREHOUSES)

    def _adjust(self, sku: str) -> AdjustStock:
        roll = self.rng.random()
        if roll < 0.05:
            quantity = 0
        else:
            quantity = self.rng.randint(1, 10) if roll < 0.6 else -self.rng.randint(1, 8)
        # A receipt holds space in its warehouse's ledger first (streams/warehouses/), but an
        # upstream producer may write one to the topic directly, without a hold.
        hold = f"hold-{self.count}" if quantity > 0 and self.rng.random() < 0.95 else ""
        return AdjustStock(self._warehouse(), quantity, "received" if quantity > 0 else "removed", hold)

    def _reserve(self, sku: str) -> Reserve:
        roll = self.rng.random()
        quantity = self.rng.randint(-1, 0) if roll < 0.05 else self.rng.randint(1, 6)
        rid = self._reservation_id(sku)
        ttl = self.rng.choice((0, 0, 5, 20, 60))  # in steps of the clients' clock
        if ttl:
            self.deadlines[sku].append(self.count + ttl)
        return Reserve(rid, f"order-{self.count}", self._warehouse(), quantity, ttl)

    def tick(self, partition: int) -> str:
        """The clock's tick at the current time, as a worker's timer writes it."""
        at = self.count
        self.ticks[partition].append((len(self.logs[partition]), at))
        return self._append(partition, Command(f"tick:{partition}:{at}", CLOCK_KEY, at, Tick(),
                                               "clock"), -1, "clock")

    def _reservation_id(self, sku: str) -> str:
        mine, roll = self.reservation_ids[sku], self.rng.random()
        if mine and roll < 0.25:
            return self.rng.choice(mine)
        if self.scenario.shared_reservation_ids and roll < 0.4:
            partition = self.scenario.partition_of(sku)
            neighbours = [r for s, ids in self.reservation_ids.items() for r in ids
                          if s != sku and self.scenario.partition_of(s) == partition]
            if neighbours:
                mine.append(self.rng.choice(neighbours))
                return mine[-1]
        mine.append(f"res-{self.count}")
        return mine[-1]

    def _end_id(self, sku: str) -> str:
        """A reservation to end: this SKU's (live or ended), another SKU's, or none at all."""
        roll, mine = self.rng.random(), self.reservation_ids[sku]
        if mine and roll < 0.75:
            return self.rng.choice(mine)
        others = [r for ids in self.reservation_ids.values() for r in ids]
        if others and roll < 0.85:
            return self.rng.choice(others)
        return f"res-none-{self.count}"

    def _release(self, sku: str) -> Release:
        return Release(self._end_id(sku))

    def _commit(self, sku: str) -> Commit:
        return Commit(self._end_id(sku))

    def _threshold(self, sku: str) -> SetLowStockThreshold:
        return SetLowStockThreshold(self._warehouse(), self.rng.choice((-1, 0, 2, 5, 10)))


# --------------------------------------------------------------------------------- worker
class ChangelogTable(dict):
    """A partition's in-memory table; every write and delete is queued, in order, for the changelog.

    Values are queued as JSON, the table's serializer in ``streams/app.py``."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self.queued: list[tuple[str, str | None]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.queued.append((key, json.dumps(value)))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.queued.append((key, None))
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.queued.append((key, None))
        return super().pop(key, *default)


@dataclass(frozen=True)
class Delivery:
    """One answer of a worker: the command at ``offset`` and the events it emitted."""

    partition: int
    offset: int
    entry: Entry
    events: list[Event]
    high: int  # the highest offset handled before (its writes may be in the table): -1 for none


class Worker:
    """One partition's stream worker: consumes its log in order through StockStore."""

    def __init__(self, partition: int, log: list[Entry], scenario: Scenario) -> None:
        self.partition, self.log = partition, log
        self.window, self.max_uncommitted = scenario.window, scenario.max_uncommitted
        self.changelog: list[tuple[str, str | None]] = []  # durable: what the topic holds
        self.compacted: dict[str, str] = {}  # the same, as compaction keeps it: the last value
        self.committed = self.position = 0
        self.high = -1
        self.last_command_from = 0  # where the last command's writes begin in the queue
        self._recover()

    @property
    def done(self) -> bool:
        return self.position >= len(self.log)

    def step(self) -> Delivery:
        if self.position - self.committed >= self.max_uncommitted:
            self.commit()
        offset, entry = self.position, self.log[self.position]
        self.last_command_from = len(self.table.queued)
        events = self.store.handle(entry.command)
        delivery = Delivery(self.partition, offset, entry, events, self.high)
        self.high, self.position = max(self.high, offset), offset + 1
        return delivery

    def commit(self) -> None:
        """Flush the queued writes, then commit the offset: it only covers durable commands."""
        self._flush(self.table.queued)
        self.table.queued.clear()
        self.committed = self.position

    def crash(self, rng: Random, mid_command: bool = False) -> str:
        """Die: a prefix of the queued writes reached the changelog. Recover, resume at the commit.

        ``mid_command``: it died while the last command's writes were being sent."""
        queued = self.table.queued
        last = min(self.last_command_from, len(queued))
        kept = rng.randint(last, len(queued)) if mid_command else self._surviving(rng, len(queued))
        self._flush(queued[:kept])
        self._recover()
        lost = f"p{self.partition} crashed at {self.position}: kept {kept}/{len(queued)} writes"
        self.position = self.committed
        return f"{lost}, resumes at {self.committed}"

    def _surviving(self, rng: Random, queued: int) -> int:
        """How many queued writes survive: any prefix, often one inside the last command's."""
        roll, last = rng.random(), min(self.last_command_from, queued)
        if roll < 0.15:
            return 0
        if roll < 0.3:
            return queued
        return rng.randint(last, queued) if roll < 0.7 else rng.randint(0, queued)

    def _flush(self, writes: list[tuple[str, str | None]]) -> None:
        self.changelog.extend(writes)
        for key, value in writes:
            if value is None:
                self.compacted.pop(key, None)
            else:
                self.compacted[key] = value

    def _recover(self) -> None:
        """The table as a successor restores it from the (compacted) changelog."""
        table = ChangelogTable({key: json.loads(value) for key, value in self.compacted.items()})
        self.table, self.store = table, StockStore(table, window=self.window)


# ------------------------------------------------------------------------------ reference
@dataclass
class TinySku:
    """An independent restatement of the rules: levels per warehouse and the reservations."""

    exists: bool = False
    seq: int = 0
    stock: dict[str, list[int]] = field(default_factory=dict)  # warehouse -> [on_hand, reserved]
    # id -> [warehouse, quantity, state, deadline (0: none)]
    holds: dict[str, list[Any]] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)  # low stock, per warehouse

    def is_low(self, warehouse: str) -> bool:
        on_hand, reserved = self.stock.get(warehouse, [0, 0])
        threshold = self.thresholds.get(warehouse, 0)
        return threshold > 0 and on_hand - reserved < threshold

    def apply(self, command: Command) -> str:
        """Apply one command; the outcome is the accepted event's type or the rejection reason."""
        body = command.body
        if isinstance(body, CreateProduct):
            return self._create(body)
        if isinstance(body, SetLowStockThreshold):
            return self._threshold(body)
        if isinstance(body, (Release, Commit, Expire)):
            return self._end(body, command.issued_at)
        if isinstance(body, Reserve) and body.ttl_ms < 0 and self.exists and body.quantity > 0 \
                and body.warehouse and body.reservation_id not in self.holds:
            return "OTHER"
        if not self.exists:
            return "UNKNOWN_PRODUCT"
        if body.quantity == 0 or (isinstance(body, Reserve) and body.quantity < 0):
            return "INVALID_QUANTITY"
        if not body.warehouse:
            return "OTHER"
        return self._adjust(body) if isinstance(body, AdjustStock) else self._reserve(body, command.issued_at)

    def _threshold(self, body: SetLowStockThreshold) -> str:
        if not self.exists:
            return "UNKNOWN_PRODUCT"
        if not body.warehouse:
            return "OTHER"
        if body.threshold < 0:
            return "INVALID_QUANTITY"
        self.thresholds[body.warehouse] = body.threshold
        self.seq += 1
        return "LowStockThresholdSet"

    def _create(self, body: CreateProduct) -> str:
        if self.exists:
            return "PRODUCT_EXISTS"
        if not body.name.strip():
            return "OTHER"
        self.exists, self.seq = True, self.seq + 1
        return "ProductCreated"

    def _adjust(self, body: AdjustStock) -> str:
        if body.quantity > 0 and not body.hold_id:
            return "SPACE_NOT_HELD"
        level = self.stock.setdefault(body.warehouse, [0, 0])
        if level[0] + body.quantity < level[1]:
            return "INSUFFICIENT_STOCK"
        level[0] += body.quantity
        self.seq += 1
        return "StockAdjusted"

    def _reserve(self, body: Reserve, now: int) -> str:
        if body.reservation_id in self.holds:
            return "RESERVATION_EXISTS"
        level = self.stock.setdefault(body.warehouse, [0, 0])
        if level[0] - level[1] < body.quantity:
            return "INSUFFICIENT_STOCK"
        level[1] += body.quantity
        deadline = now + body.ttl_ms if body.ttl_ms else 0
        self.holds[body.reservation_id] = [body.warehouse, body.quantity, "PENDING", deadline]
        self.seq += 1
        return "Reserved"

    def _end(self, body: Release | Commit | Expire, now: int) -> str:
        hold = self.holds.get(body.reservation_id)
        if hold is None:
            return "UNKNOWN_RESERVATION"
        if hold[2] != "PENDING":
            return "RESERVATION_NOT_PENDING"
        due = 0 < hold[3] <= now
        if isinstance(body, Expire) and not due:
            return "OTHER"
        if isinstance(body, Commit) and due:
            return "RESERVATION_EXPIRED"
        level, quantity = self.stock[hold[0]], hold[1]
        level[1] -= quantity
        if isinstance(body, Commit):
            level[0] -= quantity
        outcome = type(body).__name__ + ("ted" if isinstance(body, Commit) else "d")
        hold[2] = outcome.upper()
        self.seq += 1
        return outcome


class Reference:
    """The specification: each distinct command once, in order of first appearance.

    Decided by ``decide``/``evolve``, cross-checked by ``TinySku``, with the window of store.py:
    per SKU the last ``window`` recorded commands are remembered, a rejection for a SKU that does
    not exist (yet) included; a reservation is forgotten with the command that ended it."""

    def __init__(self, scenario: Scenario, logs: list[list[Entry]]) -> None:
        self.scenario, self.window = scenario, scenario.window
        self.states = {sku: SkuState(sku) for sku in scenario.skus + scenario.ghosts}
        self.tiny = {sku: TinySku() for sku in self.states}
        self.remembered: dict[str, deque[tuple[str, str | None]]] = defaultdict(deque)
        self.recorded: dict[str, list[int]] = defaultdict(list)  # per SKU: offsets, in order
        self.numbers: dict[str, int] = {}  # command id -> its number among its SKU's records
        self.outcomes: dict[str, list[Event]] = {}
        for log in logs:
            for offset, entry in enumerate(log):
                if entry.fresh:
                    self._apply(offset, entry.command)

    def count_through(self, sku: str, offset: int) -> int:
        """How many commands of ``sku`` are recorded once the log up to ``offset`` is handled."""
        return bisect.bisect_right(self.recorded[sku], offset)

    def _apply(self, offset: int, command: Command) -> None:
        if isinstance(command.body, Tick):
            self._tick(offset, command)
            return
        self.outcomes[command.command_id] = self._decide(offset, command)

    def _tick(self, offset: int, tick: Command) -> None:
        """Every pending reservation of the tick's partition due by its time, by deadline."""
        partition, at = int(tick.command_id.split(":")[1]), tick.issued_at
        due = sorted((f"x:{r.expires_at:013d}:{sku}:{rid}", sku, rid)
                     for sku, state in self.states.items()
                     if self.scenario.partition_of(sku) == partition
                     for rid, r in state.reservations.items()
                     if r.state is ReservationState.PENDING and 0 < r.expires_at <= at)
        events: list[Event] = []
        for entry, sku, rid in due:
            events.extend(self._decide(offset, Command(expire_id(entry), sku, at, Expire(rid), "clock")))
        self.outcomes[tick.command_id] = events

    def _decide(self, offset: int, command: Command) -> list[Event]:
        state = self.states[command.sku]
        events = decide(state, command)
        self._cross_check(command, events)
        self.states[command.sku] = fold(state, events)
        self._record(offset, command, events)
        return events

    def _cross_check(self, command: Command, events: list[Event]) -> None:
        tiny = self.tiny[command.sku]
        [event] = events
        was_low = tiny.is_low(event.warehouse)
        expected = tiny.apply(command)
        got = str(event.body.reason) if event.is_rejection else event.type
        if got != expected:
            raise Anomaly(f"logic.decide says {got}, the tiny model {expected}: {command}")
        crossed = tiny.is_low(event.warehouse) and not was_low
        threshold = tiny.thresholds.get(event.warehouse, 0)
        if (event.low_stock, event.low_stock_threshold) != (crossed, threshold):
            raise Anomaly(f"event {event} says low stock {event.low_stock} at threshold "
                          f"{event.low_stock_threshold}, the tiny model {crossed} at {threshold}")
        level = tiny.stock.get(event.warehouse, [0, 0])
        if (event.warehouse and [event.on_hand, event.reserved] != level) or event.seq != tiny.seq:
            raise Anomaly(f"event {event} disagrees with the tiny model: {level}, seq {tiny.seq}")

    def _record(self, offset: int, command: Command, events: list[Event]) -> None:
        sku, body = command.sku, events[0].body
        ended = body.reservation_id if isinstance(body, (Released, Committed, Expired)) else None
        self.recorded[sku].append(offset)
        self.numbers[command.command_id] = len(self.recorded[sku])
        ring = self.remembered[sku]
        ring.append((command.command_id, ended))
        if len(ring) > self.window:
            _, gone = ring.popleft()
            if gone:
                self._forget(sku, gone)

    def _forget(self, sku: str, reservation_id: str) -> None:
        state = self.states[sku]
        kept = {k: v for k, v in state.reservations.items() if k != reservation_id}
        self.states[sku] = replace(state, reservations=kept)
        self.tiny[sku].holds.pop(reservation_id, None)


# -------------------------------------------------------------------------------- checker
def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


class Checker:
    """The invariants: cheap ones on every delivery, the rest once the logs are consumed."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.answers: dict[str, list[Event]] = {}  # command id -> its first answer
        self.sink: dict[str, Event] = {}  # event id -> event: a downstream upsert by event id

    # ---- during the run
    def on_delivery(self, delivery: Delivery, worker: Worker) -> None:
        command = delivery.entry.command
        first = self.answers.setdefault(command.command_id, delivery.events)
        if delivery.events != first:
            raise Anomaly(f"{_where(delivery)} {command.command_id} answered\n"
                          f"    {delivery.events}\n  earlier\n    {first}")
        for event in delivery.events:
            self._emit(event, command)
        for sku in {command.sku} | {event.sku for event in delivery.events}:
            self._levels(worker.store, sku)
            if delivery.offset >= delivery.high:  # no half-written command is left in the table
                self._reserved_is_pending(worker, sku)

    def _emit(self, event: Event, command: Command) -> None:
        # A tick answers with the events of the expiries it decided, each its own command.
        cid = event.command_id if isinstance(command.body, Tick) else command.command_id
        if isinstance(command.body, Tick) and not cid.startswith("expire:"):
            raise Anomaly(f"tick {command.command_id} answered with an event of {cid}")
        if event.event_id != event_id_for(cid) or event.command_id != cid:
            raise Anomaly(f"event {event.event_id} is not the one of command {command.command_id}")
        held = self.sink.setdefault(event.event_id, event)
        if held != event:
            raise Anomaly(f"event {event.event_id} emitted with different contents:\n"
                          f"    {held}\n    {event}")

    def _levels(self, store: StockStore, sku: str) -> None:
        for warehouse, level in store.sku(sku).levels.items():
            if not 0 <= level.reserved <= level.on_hand:
                raise Anomaly(f"{sku}/{warehouse} negative or oversold: {level}")

    def _reserved_is_pending(self, worker: Worker, sku: str) -> None:
        pending: dict[str, int] = defaultdict(int)
        for reservation in _reservations(worker.table).values():
            if reservation.sku == sku and reservation.state is ReservationState.PENDING:
                pending[reservation.warehouse] += reservation.quantity
        for warehouse, level in worker.store.sku(sku).levels.items():
            if level.reserved != pending[warehouse]:
                raise Anomaly(f"{sku}/{warehouse} reserved {level.reserved}, but the pending "
                              f"reservations hold {pending[warehouse]}")

    # ---- at the end
    def finish(self, deliveries: list[Delivery], workers: list[Worker],
               logs: list[list[Entry]]) -> None:
        reference = Reference(self.scenario, logs)
        self.contract(deliveries, reference)
        self._answers(deliveries, reference)
        for worker in workers:
            self._final_table(worker, reference)
        self._sink(workers, reference)

    def contract(self, deliveries: list[Delivery], reference: Reference) -> None:
        """Every delivery came while its command was in the window (else this test is wrong).

        When it came, the table held at most the effects of the log up to ``horizon``."""
        for d in deliveries:
            command = d.entry.command
            number = reference.numbers.get(command.command_id)
            horizon = max(d.high, d.offset - 1)
            if number is None:  # never recorded: nothing to remember
                continue
            if reference.count_through(command.sku, horizon) - number >= self.scenario.window:
                raise Anomaly(f"TEST BUG, not a store bug: {_where(d)} {command.command_id} came "
                              f"after it left the dedup window")

    def _answers(self, deliveries: list[Delivery], reference: Reference) -> None:
        for d in deliveries:
            expected = reference.outcomes[d.entry.command.command_id]
            if d.events != expected:
                raise Anomaly(f"{_where(d)} {d.entry.command} answered\n    {d.events}\n"
                              f"  the reference (each command once, in order) says\n    {expected}")

    def _final_table(self, worker: Worker, reference: Reference) -> None:
        skus = [s for s in reference.states if self.scenario.partition_of(s) == worker.partition]
        for sku in skus:
            self._final_sku(worker, reference, sku)
        expected = {(s, rid): r for s in skus for rid, r in reference.states[s].reservations.items()}
        if _reservations(worker.table) != expected:
            raise Anomaly(f"p{worker.partition} reservations {_reservations(worker.table)}, "
                          f"the reference holds {expected}")
        clean, table = _clean_run(worker, self.scenario.window), worker.table
        if _canonical(dict(table)) != _canonical(clean):
            differ = sorted(k for k in set(table) | set(clean)
                            if _canonical(table.get(k)) != _canonical(clean.get(k)))
            raise Anomaly(f"p{worker.partition} table differs from a clean run's at {differ}")

    def _final_sku(self, worker: Worker, reference: Reference, sku: str) -> None:
        got, expected = worker.store.sku(sku), replace(reference.states[sku], reservations={})
        if got != expected:
            raise Anomaly(f"{sku} ends as {got}, the reference as {expected}")
        tiny = {wh: level for wh, level in reference.tiny[sku].stock.items() if any(level)}
        levels = {wh: [lv.on_hand, lv.reserved] for wh, lv in got.levels.items()}
        if {wh: level for wh, level in levels.items() if any(level)} != tiny:
            raise Anomaly(f"{sku} levels {got.levels}, the tiny model {tiny}")
        prefix = f"c:{sku}:"
        remembered = {k[len(prefix):] for k in worker.table if k.startswith(prefix)}
        if remembered != {cid for cid, _ in reference.remembered[sku]}:
            raise Anomaly(f"{sku} remembers {sorted(remembered)}, the window holds "
                          f"{sorted(cid for cid, _ in reference.remembered[sku])}")
        self._levels(worker.store, sku)
        self._reserved_is_pending(worker, sku)

    def _sink(self, workers: list[Worker], reference: Reference) -> None:
        """The sink holds each accepted command once; deltas add up; versions have no gap."""
        accepted = {e.event_id: e for events in reference.outcomes.values() for e in events
                    if not e.is_rejection}
        held = {i: e for i, e in self.sink.items() if not e.is_rejection}
        if held != accepted:
            differ = sorted(i for i in set(held) | set(accepted) if held.get(i) != accepted.get(i))
            raise Anomaly(f"the sink's accepted events differ from the reference at {differ}")
        for worker in workers:
            for sku in reference.states:
                if self.scenario.partition_of(sku) == worker.partition:
                    mine = [e for e in held.values() if e.sku == sku]
                    self._ledger_adds_up(sku, mine, worker.store.sku(sku))

    def _ledger_adds_up(self, sku: str, events: list[Event], state: SkuState) -> None:
        if sorted(e.seq for e in events) != list(range(1, state.seq + 1)):
            raise Anomaly(f"{sku} versions {sorted(e.seq for e in events)}, state seq {state.seq}")
        for warehouse in {e.warehouse for e in events} | set(state.levels):
            mine = [e for e in events if e.warehouse == warehouse]
            sums = (sum(e.on_hand_delta for e in mine), sum(e.reserved_delta for e in mine))
            level = state.level(warehouse)
            if sums != (level.on_hand, level.reserved):
                raise Anomaly(f"{sku}/{warehouse} deltas add up to {sums}, levels are {level}")


def _where(d: Delivery) -> str:
    if not d.entry.fresh:
        kind = f"a client's retry of @{d.entry.first}"
    else:
        kind = "a redelivery after a crash" if d.offset <= d.high else "its first delivery"
    return f"p{d.partition}@{d.offset} ({kind})"


def _reservations(table: dict[str, Any]) -> dict[tuple[str, str], Reservation]:
    """The table's reservations by (SKU, id): ids belong to their SKU."""
    store = StockStore(table)
    return {(v["sku"], v["id"]): store.reservation(v["sku"], v["id"])
            for k, v in table.items() if k.startswith("r:")}


def _clean_run(worker: Worker, window: int) -> dict[str, Any]:
    """The table of one uninterrupted run over the distinct commands only."""
    table: dict[str, Any] = {}
    store = StockStore(table, window=window)
    for entry in worker.log:
        if entry.fresh:
            store.handle(entry.command)
    return table


# ----------------------------------------------------------------------------- simulation
class Simulation:
    """Clients, logs, workers and crashes, interleaved by one seeded ``Random``; then the checks."""

    def __init__(self, seed: int, **overrides: Any) -> None:
        self.rng = Random(seed)
        self.scenario = Scenario.draw(seed, self.rng, **overrides)
        self.logs: list[list[Entry]] = [[] for _ in range(self.scenario.partitions)]
        self.clients = Clients(self.rng, self.scenario, self.logs)
        self.workers = [Worker(p, log, self.scenario) for p, log in enumerate(self.logs)]
        self.checker = Checker(self.scenario)
        self.deliveries: list[Delivery] = []
        self.journal: list[str] = []
        self.crashes: list[str] = []
        self.crashes_left = self.scenario.crash_budget

    def run(self) -> None:
        try:
            for _ in range(self.scenario.ticks):
                self._tick(sending=True)
            while not all(worker.done for worker in self.workers):
                self._tick(sending=False)
        except Anomaly:  # first rule out a retry this test sent outside the store's promise
            self.checker.contract(self.deliveries, Reference(self.scenario, self.logs))
            raise
        for worker in self.workers:
            worker.commit()
        self.checker.finish(self.deliveries, self.workers, self.logs)

    def _tick(self, sending: bool) -> None:
        if sending and self.rng.random() < 0.45:
            self.journal.append(self.clients.send())
            if self.rng.random() < self.scenario.tick_rate * self.scenario.partitions:
                self.journal.append(self.clients.tick(self.rng.randrange(self.scenario.partitions)))
            return
        worker, roll = self.rng.choice(self.workers), self.rng.random()
        if roll < self.scenario.crash_rate:
            self._crash(worker)
        elif roll < 0.12:
            worker.commit()
        elif not worker.done:
            self._deliver(worker)

    def _deliver(self, worker: Worker) -> None:
        delivery = worker.step()
        self.deliveries.append(delivery)
        answer = [e.type for e in delivery.events]
        self.journal.append(f"p{delivery.partition}@{delivery.offset} handled "
                            f"{delivery.entry.command.command_id}: {answer}")
        self.checker.on_delivery(delivery, worker)
        if self.rng.random() < self.scenario.mid_command_crash:
            self._crash(worker, mid_command=True)

    def _crash(self, worker: Worker, mid_command: bool = False) -> None:
        if self.crashes_left > 0:  # a budget, so that the run ends
            self.crashes_left -= 1
            self.crashes.append(worker.crash(self.rng, mid_command))
            self.journal.append(self.crashes[-1])

    def report(self, error: BaseException, test: str) -> str:
        seed = self.scenario.seed
        tail = "\n".join(f"    {line}" for line in self.journal[-12:])
        soak = f"SIM_SEEDS={seed + 1} " if seed >= 100 else ""
        crashes = "\n".join(f"    {line}" for line in self.crashes[-4:])
        return (f"seed={seed}: {error}\n"
                f"  replay:   {soak}pytest '{TEST_FILE}::{test}[seed={seed}]'\n"
                f"  scenario: {self.scenario}\n"
                f"  crashes: {len(self.crashes)}, the last ones:\n{crashes}\n"
                f"  last steps:\n{tail}")


def simulate(seed: int, test: str, **overrides: Any) -> Simulation:
    """Run one seed; an anomaly fails ``test`` with the seed and the command that replays it."""
    simulation = Simulation(seed, **overrides)
    try:
        simulation.run()
    except Anomaly as anomaly:
        failure = simulation.report(anomaly, test)
    except Exception as error:  # a crash of the code under test: keep the traceback
        error.add_note(simulation.report(error, test))
        raise
    else:
        return simulation
    pytest.fail(failure, pytrace=False)  # outside ``except``: no chained, repeated message


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed={seed}")
def test_simulation(seed: int) -> None:
    simulate(seed, "test_simulation")
