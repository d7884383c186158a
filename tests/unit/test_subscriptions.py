"""Resumable subscriptions without servers: a replayed message equals the live one of the same
event, the merge of replay and live sends each offset once and in order, and the sink gives fresh
events offsets in batch order (api/subscriptions.py, storage/sink.py)."""
from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import api.subscriptions as subscriptions
from api.events import EventHub, low_stock_alert
from api.subscriptions import (
    Cursor, ReplayTooLong, SubscriberTooSlow, message_from_row, message_key, messages_of_row, watch,
)
from storage import sink
from storage.sink import EventSink, _ledger_row, notification
from streams.stock.records import Event, ProductCreated, SkuState, StockAdjusted
from tests.unit.test_logic import SKU, command_lists, run


# --------------------------------------------------------------------- messages from rows
def stored(event: Event, position: int) -> dict:
    """The row PostgreSQL gives back for the event: its JSONB payload and uuid as text again."""
    row = _ledger_row(event, position)
    return {**row, "payload": json.loads(json.dumps(row["payload"])), "event_id": str(row["event_id"])}


def live(event: Event, position: int) -> dict:
    """What a subscriber gets live: the NOTIFY's JSON, parsed."""
    return json.loads(json.dumps(notification(event, False, position), separators=(",", ":")))


@settings(max_examples=200, deadline=None)
@given(command_lists)
def test_a_replayed_message_equals_the_live_one_for_every_event(commands):
    _, events = run(SkuState(SKU), *commands)
    for position, event in enumerate(events, start=1):
        assert message_from_row(stored(event, position)) == live(event, position)
        replayed = messages_of_row(stored(event, position))
        expected = [live(event, position)]
        if event.low_stock:
            expected.append(low_stock_alert(live(event, position)))
        assert replayed == expected


def test_a_row_from_before_offsets_were_complete_replays_with_zero_and_false():
    event = Event("0b0c6ff2-0000-5000-8000-000000000001", "c1", SKU, 3, 1_700_000_000_123, "north", 5, 1,
                  StockAdjusted(5, "receipt"), on_hand_delta=5)
    row = stored(event, 7) | {"incoming_after": None, "preordered_after": None, "expected_at_after": None,
                              "low_stock_threshold_after": None, "low_stock": None}
    message = message_from_row(row)
    assert message == live(event, 7)
    assert (message["incoming"], message["expected_at"], message["low_stock"]) == (0, 0, False)


def test_an_event_times_milliseconds_survive_the_ledger_exactly():
    for millis in (1, 999, 1_700_000_000_001, 1_799_999_999_999, 4_102_444_799_999):
        event = Event("e", "c", SKU, 1, millis, "north", 1, 0, StockAdjusted(1, "r"),
                      expected_at=millis + 1)
        message = message_from_row(stored(event, 1))
        assert (message["occurred_at"], message["expected_at"]) == (millis, millis + 1)


def test_a_unit_cost_is_announced_and_replayed_as_its_text():
    event = Event("e", "c", SKU, 0, 1_700_000_000_000, "", 0, 0,
                  ProductCreated("shirt", unit_cost=Decimal("12.5000")))
    announced = notification(event, False, 4)
    json.dumps(announced)  # JSON takes it: a Decimal would raise here
    assert announced["body"]["unit_cost"] == "12.5000"
    assert message_from_row(stored(event, 4)) == live(event, 4)
    assert notification(Event("e", "c", SKU, 0, 1, "", 0, 0, ProductCreated("x")), False)["body"]["unit_cost"] is None


# --------------------------------------------------------------------- the merge's cursor
def stream(n: int, alerts: set[int]) -> list[dict]:
    """n events at increasing (not consecutive) offsets, the alert after each in ``alerts``."""
    out = []
    for i in range(n):
        out.append({"type": "StockAdjusted", "offset": 3 * i + 1})
        if i in alerts:
            out.append({"type": "LowStock", "offset": 3 * i + 1})
    return out


@st.composite
def deliveries(draw):
    """A stream, where the subscriber resumes in it, and the segments it is delivered in: each a
    run of the stream (a replay page, a live queue), starting at or before where the ones before
    ended (the subscription precedes the ledger read, so nothing is skipped), often before."""
    n = draw(st.integers(0, 30))
    messages = stream(n, set(draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=n))))
    start = draw(st.integers(0, len(messages)))
    covered, segments = start, []
    for _ in range(draw(st.integers(0, 8))):
        begin = draw(st.integers(0, covered))
        end = draw(st.integers(begin, len(messages)))
        segments.append(messages[begin:end])
        covered = max(covered, end)
    return messages, start, segments, covered


@settings(max_examples=500, deadline=None)
@given(deliveries())
def test_any_overlap_of_replay_and_live_deliveries_sends_each_message_once_in_order(case):
    messages, start, segments, covered = case
    after = None if start == 0 else messages[start - 1]["offset"]
    if start and messages[start - 1]["type"] == "StockAdjusted" and start < len(messages) \
            and messages[start]["type"] == "LowStock":
        # "after" names an offset: its alert counts as seen with it.
        start += 1
        covered = max(covered, start)
    cursor = Cursor(after)
    sent = [m for segment in segments for m in segment if cursor.advance(m)]
    assert sent == messages[start:covered]
    keys = [message_key(m) for m in sent]
    assert keys == sorted(set(keys))


def test_a_message_without_an_offset_is_passed_on():
    cursor = Cursor(5)
    assert cursor.advance({"type": "StockAdjusted"})
    assert cursor.offset == 5


# --------------------------------------------------------------------- watch, with a fake ledger
class Ledger:
    """The ledger's rows and a hub: committing an event stores its row and publishes it live,
    like the sink's NOTIFY on commit."""

    def __init__(self, hub: EventHub) -> None:
        self.hub, self.rows, self.position = hub, [], 0

    def commit(self, n: int = 1, low_stock: bool = False, published: bool = True) -> None:
        for _ in range(n):
            self.position += 2  # offsets are not consecutive
            event = Event(f"e{self.position}", f"c{self.position}", SKU, self.position, 1_700_000_000_000,
                          "north", 10, 0, StockAdjusted(1, "r"), low_stock=low_stock, low_stock_threshold=20)
            self.rows.append(stored(event, self.position))
            if published:
                self.hub._on_notify(None, 0, "stock_events",
                                    json.dumps(notification(event, False, self.position)))

    def after(self, offset: int) -> list[dict]:
        return [r for r in self.rows if r["position"] > offset]


@pytest.fixture
def world(monkeypatch):
    hub = EventHub("postgresql://unused")
    hub.listening.set()
    ledger = Ledger(hub)
    during_page: list = []  # callables run at each page read: commits racing the replay

    async def get_ledger_after(_conn, after, _product, _warehouse, limit):
        if during_page:
            during_page.pop(0)()
        return ledger.after(after)[:limit]

    async def count_ledger_after(_conn, after, _product, _warehouse, cap):
        return min(len(ledger.after(after)), cap)

    @asynccontextmanager
    async def connect():
        yield None

    monkeypatch.setattr(subscriptions, "get_ledger_after", get_ledger_after)
    monkeypatch.setattr(subscriptions, "count_ledger_after", count_ledger_after)
    monkeypatch.setattr(subscriptions, "REPLAY_PAGE", 4)
    return SimpleNamespace(hub=hub, ledger=ledger, engine=SimpleNamespace(connect=connect),
                           during_page=during_page)


async def take(messages, n: int) -> list[dict]:
    return [await asyncio.wait_for(anext(messages), 5) for _ in range(n)]


def offsets(messages: list[dict]) -> list[tuple[int, int]]:
    return [message_key(m) for m in messages]


def test_watch_replays_what_was_missed_then_goes_live_with_commits_racing_the_replay(world):
    async def scenario():
        world.ledger.commit(9)
        world.ledger.commit(1, low_stock=True)
        world.during_page.extend([lambda: world.ledger.commit(3), lambda: world.ledger.commit(2), lambda: None])
        messages = watch(world.hub, world.engine, after=6, replay_max=100)
        got = await take(messages, 7 + 1 + 3 + 2)  # offsets 8..20 and the 20th's alert, 22..30
        world.ledger.commit(2)
        got += await take(messages, 2)
        await messages.aclose()
        return got

    got = asyncio.run(scenario())
    expected = [m for r in world.ledger.after(6) for m in messages_of_row(r)]
    assert got == expected
    assert not world.hub._subscriptions, "closing the generator unsubscribes"


def test_a_subscriber_overtaken_while_replaying_resumes_from_the_ledger(world):
    async def scenario():
        world.ledger.commit(6)
        world.during_page.append(lambda: world.ledger.commit(1500))  # more than the queue holds
        messages = watch(world.hub, world.engine, after=0, replay_max=10_000)
        got = await take(messages, 1506)
        world.ledger.commit(1)
        got += await take(messages, 1)
        await messages.aclose()
        return got

    got = asyncio.run(scenario())
    assert offsets(got) == [(2 * i, 0) for i in range(1, 1508)]


def test_events_the_hub_missed_while_its_listen_connection_was_down_come_from_the_ledger(world):
    async def scenario():
        world.ledger.commit(2)
        messages = watch(world.hub, world.engine, after=0)
        got = await take(messages, 2)
        world.ledger.commit(1)
        got += await take(messages, 1)
        world.hub.listening.clear()
        world.hub._lose_resumable()  # the connection dropped: the NOTIFYs of these are gone
        world.ledger.commit(3, published=False)
        pending = asyncio.ensure_future(take(messages, 4))
        await asyncio.sleep(0.01)
        assert not pending.done(), "it waits for the hub to listen again"
        world.hub.listening.set()
        await asyncio.sleep(0.01)
        world.ledger.commit(1)
        got += await pending
        await messages.aclose()
        return got

    got = asyncio.run(scenario())
    assert offsets(got) == [(2 * i, 0) for i in range(1, 8)]


def test_a_subscriber_that_is_not_resumable_is_not_dropped_when_the_hub_reconnects(world):
    async def scenario():
        async with world.hub.subscribe() as sub:
            world.hub._lose_resumable()
            world.ledger.commit(1)
            return await asyncio.wait_for(sub.queue.get(), 5)

    assert asyncio.run(scenario())["offset"] == 2


def test_too_many_missed_events_raise_before_anything_is_sent(world):
    async def scenario():
        world.ledger.commit(5)
        messages = watch(world.hub, world.engine, after=2, replay_max=3)
        with pytest.raises(ReplayTooLong):
            await anext(messages)
        assert not world.hub._subscriptions
        assert offsets(await take(watch(world.hub, world.engine, after=2, replay_max=4), 4))[0] == (4, 0)

    asyncio.run(scenario())


def test_a_live_subscriber_whose_queue_overflowed_gets_what_was_queued_then_is_too_slow(world):
    async def scenario():
        messages = watch(world.hub, world.engine)
        first = asyncio.ensure_future(anext(messages))
        await asyncio.sleep(0)  # subscribed
        world.ledger.commit(1001)
        got = [await first]
        with pytest.raises(SubscriberTooSlow):
            while True:
                got.append(await anext(messages))
        return got

    got = asyncio.run(scenario())
    assert offsets(got) == [(2 * i, 0) for i in range(1, 1001)]


# --------------------------------------------------------------------- the sink's offsets
class RecordingEngine:
    """The sink's statements as a fake PostgreSQL sees them: positions from a sequence, the
    ledger's ids (some there already), the NOTIFY payloads."""

    def __init__(self, existing: set[str]) -> None:
        self.existing, self.next, self.ledger, self.notified, self.locks = existing, 100, [], [], 0

    @asynccontextmanager
    async def begin(self):
        async def execute(stmt, params=None):
            if stmt is sink._LOCK_POSITIONS:
                assert params == {"key": sink.LEDGER_POSITION_LOCK} and not self.ledger
                self.locks += 1
            if isinstance(params, dict) and "n" in params:
                taken = list(range(self.next, self.next + params["n"]))
                self.next += params["n"]
                return SimpleNamespace(scalars=lambda: taken)
            if isinstance(params, dict) and "payloads" in params:
                self.notified += [json.loads(p) for p in params["payloads"]]
            if stmt is sink._INSERT_LEDGER:
                assert self.locks == 1, "positions are taken under the lock"
                fresh = [r for r in params if r["event_id"] not in self.existing]
                self.ledger += fresh
                return SimpleNamespace(scalars=lambda: [r["event_id"] for r in fresh])
            return SimpleNamespace(scalars=lambda: [])
        yield SimpleNamespace(execute=execute)


def test_fresh_events_get_offsets_in_batch_order_and_duplicates_none():
    def ev(n: int) -> Event:
        return Event(f"e{n}", f"c{n}", SKU, n, 1_700_000_000_000, "north", n, 0, StockAdjusted(1, "r"))
    engine = RecordingEngine(existing={"e2"})
    asyncio.run(EventSink(engine, retry_s=0).write([ev(1), ev(2), ev(3), ev(1), ev(4)]))
    assert [(r["event_id"], r["position"]) for r in engine.ledger] == [("e1", 100), ("e3", 102), ("e4", 103)]
    assert [(m["event_id"], m["duplicate"], m.get("offset")) for m in engine.notified] == [
        ("e1", False, 100), ("e2", True, None), ("e3", False, 102), ("e1", True, None), ("e4", False, 103)]
    assert engine.ledger[0]["low_stock_threshold_after"] == 0 and engine.ledger[0]["expected_at_after"] is None


# --------------------------------------------------------------------- the WebSocket's close codes
def ws_app(monkeypatch, **patches):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.routes import ws

    async def principal(_websocket):
        return object()

    async def head(_engine):
        return 42

    monkeypatch.setattr(ws, "websocket_principal", principal)
    monkeypatch.setattr(ws, "ledger_head", head)
    for name, value in patches.items():
        monkeypatch.setattr(ws, name, value)
    app = FastAPI()
    app.include_router(ws.router)
    app.state.settings = SimpleNamespace(subscription_replay_max=3)
    app.state.engine = app.state.hub = None
    return TestClient(app)


def test_the_websocket_closes_4410_for_a_client_further_behind_than_the_replay_limit(monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    async def too_long(_engine, after, _product, _warehouse, replay_max):
        raise ReplayTooLong(f"more than {replay_max} events after offset {after}")

    with ws_app(monkeypatch, check_replay=too_long).websocket_connect("/ws/inventory?after=1") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4410


def test_the_websocket_says_where_it_starts_sends_offsets_and_closes_1013_when_too_slow(monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    seen = {}

    async def messages(_hub, _engine, **kwargs):
        seen.update(kwargs)
        yield {"type": "StockAdjusted", "offset": 43}
        raise SubscriberTooSlow()

    with ws_app(monkeypatch, watch=messages).websocket_connect("/ws/inventory?product_id=P") as ws:
        assert ws.receive_json() == {"type": "subscribed", "product_id": "P", "warehouse": None, "after": 42}
        assert ws.receive_json()["offset"] == 43
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1013
    assert seen == {"product_id": "P", "warehouse": None, "after": 42, "replay_max": 3}
