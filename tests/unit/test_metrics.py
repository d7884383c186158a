"""Observability without servers: request ids (validated, echoed, in every log record of the
request), metrics labelled by route template, and the worker's decision hooks (counts, the
request id logged on rejections and dead letters, and passed on to what a decision sends)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.observability import UNMATCHED, ObservabilityMiddleware, RequestIdFilter, valid_request_id
from common.errors import MalformedRecordError
from common.logs import REQUEST_ID_HEADER, JsonFormatter
from streams.metrics import sink_batch_done
from streams.partition.agent import decide_and_commit, decide_records
from streams.stock.records import CommandRejected, Event, RejectReason, StockAdjusted
from streams.topics import STOCK_COMMANDS, STOCK_COMMANDS_DLQ, STOCK_EVENTS


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------------------ request ids
@pytest.mark.parametrize("value", ["abc", "A-1.b_2:c", "x" * 128, "0b3f5e2c-1d2e-4c6b-9a8f-7e6d5c4b3a21"])
def test_a_sane_request_id_is_accepted(value):
    assert valid_request_id(value)


@pytest.mark.parametrize("value", [None, "", "x" * 129, "a b", "a\nb", 'a"b', "é", "a/b", "a;b"])
def test_anything_else_is_refused(value):
    assert not valid_request_id(value)


class _Records(logging.Handler):
    """The access log's and the endpoints' records, through the filter the API installs."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records():
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/inventory/{product_id}")
    async def read(product_id: str) -> dict:
        logging.getLogger("tests.endpoint").info("reading", extra={"product_id": product_id})
        return {"product_id": product_id}

    app.add_middleware(ObservabilityMiddleware)
    return app


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_requests_are_counted_by_route_template_not_by_path(records):
    app, route = _app(), "/inventory/{product_id}"
    before = _value("inventory_api_requests_total", method="GET", route=route, status="200")
    count = _value("inventory_api_request_duration_seconds_count", method="GET", route=route, status="200")
    for sku in ("SKU-1", "SKU-2", "SKU-3"):
        assert (await _get(app, f"/inventory/{sku}")).status_code == 200
    assert _value("inventory_api_requests_total", method="GET", route=route, status="200") == before + 3
    assert _value("inventory_api_request_duration_seconds_count", method="GET", route=route,
                  status="200") == count + 3
    assert _value("inventory_api_requests_total", method="GET", route="/inventory/SKU-1", status="200") == 0
    access = [r for r in records if r.name == "api.access"]
    assert [(r.method, r.route, r.status) for r in access] == [("GET", route, 200)] * 3
    assert all(r.duration_ms >= 0 for r in access)


async def test_a_path_no_route_matches_has_one_label():
    app = _app()
    before = _value("inventory_api_requests_total", method="GET", route=UNMATCHED, status="404")
    for path in ("/nowhere/1", "/nowhere/2"):
        assert (await _get(app, path)).status_code == 404
    assert _value("inventory_api_requests_total", method="GET", route=UNMATCHED, status="404") == before + 2


async def test_a_sane_request_id_is_echoed_and_in_every_log_record_of_the_request(records):
    response = await _get(_app(), "/inventory/SKU-9", **{"X-Request-ID": "client-id.42"})
    assert response.headers["x-request-id"] == "client-id.42"
    mine = [r for r in records if r.name in ("api.access", "tests.endpoint")]
    assert {r.name for r in mine} == {"api.access", "tests.endpoint"}
    assert all(r.request_id == "client-id.42" for r in mine)
    line = JsonFormatter().format(next(r for r in mine if r.name == "tests.endpoint"))
    assert '"request_id": "client-id.42"' in line


@pytest.mark.parametrize("given", ["has space", "x" * 129, "<script>"])
async def test_an_insane_request_id_is_replaced_by_a_fresh_one(records, given):
    first = await _get(_app(), "/inventory/SKU-9", **{"X-Request-ID": given})
    second = await _get(_app(), "/inventory/SKU-9", **{"X-Request-ID": given})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert given not in ids and ids[0] != ids[1] and all(valid_request_id(i) for i in ids)
    assert given not in {getattr(r, "request_id", None) for r in records}


def test_a_request_without_an_id_gets_one_and_no_record_outside_a_request_has_one(records):
    logging.getLogger("tests.outside").info("outside any request")
    assert not hasattr(next(r for r in records if r.name == "tests.outside"), "request_id")


async def test_the_websocket_passes_through_the_middleware_untouched():
    seen = []

    async def inner(scope, receive, send) -> None:
        seen.append((scope, receive, send))

    scope, receive, send = {"type": "websocket", "path": "/ws/inventory", "headers": []}, object(), object()
    await ObservabilityMiddleware(inner)(scope, receive, send)
    assert seen == [(scope, receive, send)] and scope == {"type": "websocket", "path": "/ws/inventory",
                                                          "headers": []}


# ------------------------------------------------------------------------- worker decisions
def _event(offset: int, request_id: str | None = None, partition: int = 0) -> SimpleNamespace:
    headers = [] if request_id is None else [(REQUEST_ID_HEADER, request_id.encode())]
    message = SimpleNamespace(topic=STOCK_COMMANDS, partition=partition, offset=offset, headers=headers,
                              tp=(STOCK_COMMANDS, partition))
    return SimpleNamespace(key=f"SKU-{offset}".encode(), value=str(offset).encode(), message=message)


def _fact(command_id: str, body) -> Event:
    return Event(event_id=f"e-{command_id}", command_id=command_id, sku="SKU", seq=1, occurred_at=0,
                 warehouse="default", on_hand=0, reserved=0, body=body)


def _decide(events):
    """Values: "bad" does not decode, "rejected..." is refused, the rest accepted."""
    def decode(key, value):
        if value == b"bad":
            raise MalformedRecordError("not a command")
        return SimpleNamespace(command_id=value.decode(), issued_at=0, rejected=value.startswith(b"rejected"))

    def handle(command):
        if command.rejected:
            return [_fact(command.command_id, CommandRejected("Reserve", RejectReason.INSUFFICIENT_STOCK))]
        return [_fact(command.command_id, StockAdjusted(1, "receipt"))]

    def announce(decided, command, facts):
        for fact in facts:
            decided.send(STOCK_EVENTS, b"SKU", fact.event_id.encode())

    return decide_records(events, decode, handle, announce, STOCK_COMMANDS_DLQ)


def test_a_rejection_is_logged_with_its_request_id_and_the_id_travels_with_the_outputs(caplog):
    rejected = _event(1, "req-rejected")
    rejected.value = b"rejected-1"
    with caplog.at_level(logging.INFO, logger="streams.partition.agent"):
        decided = _decide([_event(0, "req-accepted"), rejected, _event(2)])
    [line] = [r for r in caplog.records if r.getMessage() == "command rejected"]
    assert (line.request_id, line.reason, line.area, line.levelname) == (
        "req-rejected", "INSUFFICIENT_STOCK", "stock", "INFO")
    assert [headers for *_, headers in decided.outputs] == [
        [(REQUEST_ID_HEADER, b"req-accepted")], [(REQUEST_ID_HEADER, b"req-rejected")], []]


def test_a_dead_letter_is_logged_with_its_request_id(caplog):
    bad = _event(3, "req-bad")
    bad.value = b"bad"
    with caplog.at_level(logging.WARNING, logger="streams.partition.agent"):
        decided = _decide([bad])
    [line] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert line.request_id == "req-bad" and "dead-letter" in line.getMessage()
    assert decided.outputs[0][0] == STOCK_COMMANDS_DLQ


class _Owner:
    db = {}
    partition = 0

    async def publish(self, writes, decided) -> None:
        pass


class _Owners:
    async def acquire(self, partition: int) -> _Owner:
        return _Owner()


class _Consumer:
    def highwater(self, tp) -> int:
        return 10


async def test_a_batch_is_counted_once_it_is_final_with_its_lag(monkeypatch):
    monkeypatch.setattr("streams.partition.agent.PartitionState", lambda db: db)
    names = [("inventory_commands_decided_total", {"area": "stock", "outcome": "accepted"}),
             ("inventory_commands_decided_total", {"area": "stock", "outcome": "rejected"}),
             ("inventory_command_rejects_total", {"area": "stock", "reason": "INSUFFICIENT_STOCK"}),
             ("inventory_dead_letters_total", {"topic": STOCK_COMMANDS_DLQ}),
             ("inventory_decision_latency_seconds_count", {"area": "stock"}),
             ("inventory_command_batch_size_count", {"area": "stock"})]
    before = [_value(name, **labels) for name, labels in names]
    rejected, bad = _event(4), _event(5)
    rejected.value, bad.value = b"rejected-4", b"bad"
    events = [_event(1), _event(2), _event(3), rejected, bad, _event(6)]
    await decide_and_commit(_Owners(), events, lambda batch, records: _decide(records), _Consumer())
    after = [_value(name, **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before)] == [4, 1, 1, 1, 5, 1]
    assert _value("inventory_consumer_lag", topic=STOCK_COMMANDS, partition="0") == 10 - 7


def test_the_ledger_counts_persisted_events_without_its_dead_letters():
    tp = TopicPartition(STOCK_EVENTS, 1)
    before = _value("inventory_ledger_events_persisted_total", topic=STOCK_EVENTS)
    count = _value("inventory_ledger_batch_seconds_count")
    sink_batch_done({tp: [object()] * 5}, {(STOCK_EVENTS, 1): 2}, 0.01)
    assert _value("inventory_ledger_events_persisted_total", topic=STOCK_EVENTS) == before + 3
    assert _value("inventory_ledger_batch_seconds_count") == count + 1
