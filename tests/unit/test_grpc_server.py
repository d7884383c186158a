"""The servicer's handlers with fakes for the app's state: statuses, never UNKNOWN for what is
expected, and a watch closed with its call (no server, no database)."""
from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from api.grpc import server
from api.grpc.generated import inventory_pb2 as pb
from api.subscriptions import ReplayTooLong, SubscriberTooSlow
from common.settings import Settings


class _Aborted(Exception):
    pass


class _Context:
    """grpc.aio's context as far as the handlers use it: abort raises, as the real one does."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self):
        return ()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = code, details
        raise _Aborted(details)


class _DownEngine:
    def connect(self):
        raise ConnectionRefusedError("PostgreSQL is away")


@pytest.fixture
def service(monkeypatch):
    async def allow(state, metadata, required=None):
        return None
    monkeypatch.setattr(server, "authenticate", allow)
    state = SimpleNamespace(settings=Settings(subscription_replay_max=10), hub=object(), engine=_DownEngine())
    return server.InventoryService(state)


def _fake_watch(monkeypatch, messages, error=None, calls=None):
    async def watch(hub, engine, **kwargs):
        calls.append(kwargs) if calls is not None else None
        try:
            for message in messages:
                yield message
            if error is not None:
                raise error
        finally:
            calls.append("closed") if calls is not None else None
    monkeypatch.setattr(server, "watch", watch)


async def _drain(stream, context) -> list:
    received = []
    with pytest.raises(_Aborted):
        async for item in stream:
            received.append(item)
    return received


EVENT = {"type": "StockAdjusted", "sku": "A", "warehouse": "w", "offset": 3, "on_hand": 1, "reserved": 0}


@pytest.mark.parametrize("error, code", [(ReplayTooLong("too far"), grpc.StatusCode.OUT_OF_RANGE),
                                         (SubscriberTooSlow("slow"), grpc.StatusCode.RESOURCE_EXHAUSTED)])
async def test_the_resume_helpers_errors_end_a_watch_with_their_status(service, monkeypatch, error, code):
    calls = []
    _fake_watch(monkeypatch, [EVENT], error, calls)
    context = _Context()
    request = pb.WatchRequest(product_id="A", after_offset=0)
    received = await _drain(service.WatchInventory(request, context), context)
    assert [u.event.offset for u in received] == [3] and context.status[0] is code
    assert calls == [{"product_id": "A", "warehouse": None, "after": 0, "replay_max": 10}, "closed"]


async def test_a_watch_without_an_offset_is_live_only_and_is_closed_with_its_call(service, monkeypatch):
    calls = []
    _fake_watch(monkeypatch, [EVENT, EVENT], calls=calls)
    stream = service.WatchInventory(pb.WatchRequest(warehouse="w"), _Context())
    assert (await anext(stream)).event.sku == "A"
    await stream.aclose()  # the client went away
    assert calls == [{"product_id": None, "warehouse": "w", "after": None, "replay_max": 10}, "closed"]


@pytest.mark.parametrize("request_", [pb.WatchRequest(after_offset=-1), pb.WatchRequest(product_id="a b"),
                                      pb.WatchRequest(warehouse="")])
async def test_bad_watch_arguments_are_invalid_before_anything_is_watched(service, monkeypatch, request_):
    calls = []
    _fake_watch(monkeypatch, [EVENT], calls=calls)
    context = _Context()
    assert await _drain(service.WatchInventory(request_, context), context) == []
    assert context.status[0] is grpc.StatusCode.INVALID_ARGUMENT and calls == []


async def test_a_database_that_does_not_answer_is_unavailable_and_other_errors_stay_errors(service, monkeypatch):
    context = _Context()
    with pytest.raises(_Aborted):
        await service.GetInventory(pb.GetInventoryRequest(product_id="A"), context)
    assert context.status[0] is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(_Aborted):
        await service.ListLowStock(pb.ListLowStockRequest(limit=10), context)
    assert context.status[0] is grpc.StatusCode.UNAVAILABLE

    _fake_watch(monkeypatch, [], KeyError("a bug"))
    with pytest.raises(KeyError):  # a bug is not disguised as a status: grpc reports it as UNKNOWN
        await _drain(service.WatchInventory(pb.WatchRequest(), _Context()), _Context())
