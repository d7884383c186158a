"""Idempotency-Key (api/idempotency.py): the fingerprint, which answers are kept, the decision on
a record, and the middleware in process on an in-memory Redis (no servers)."""
from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError

from api import idempotency
from api.idempotency import (IN_FLIGHT, REPLAYED_HEADER, Action, IdempotencyMiddleware, answer_record, decide,
                             fingerprint, in_flight_record, is_final, kept_headers, parse_record, record_key,
                             valid_key)
from api.problems import install_problem_handlers
from api.security import Role, issue_token
from common.settings import Settings

SETTINGS = Settings(jwt_secret="s" * 40, command_timeout_s=1.0)


# ------------------------------------------------------------------------------ pure functions
def test_the_fingerprint_changes_with_every_part_and_nothing_else():
    base = ("POST", "/reservations", "user:a", b'{"quantity":1}')
    assert fingerprint(*base) == fingerprint(*base)
    assert fingerprint("post", *base[1:]) == fingerprint(*base)
    for changed in (("POST", "/reservations?x=1", "user:a", base[3]), ("POST", "/orders", "user:a", base[3]),
                    ("POST", "/reservations", "user:b", base[3]),
                    ("POST", "/reservations", "user:a", b'{"quantity":2}')):
        assert fingerprint(*changed) != fingerprint(*base), changed


def test_the_fingerprint_tells_apart_the_same_bytes_split_differently():
    assert fingerprint("POST", "/a", "user:xb", b"") != fingerprint("POST", "/a", "user:x", b"b")
    assert fingerprint("POST", "/ab", "", b"") != fingerprint("POST", "/a", "b", b"")


@pytest.mark.parametrize("status", [200, 201, 204, 400, 404, 409, 410, 422])
def test_final_answers_are_kept(status):
    assert is_final(status)


@pytest.mark.parametrize("status", [100, 202, 301, 401, 403, 408, 429, 500, 502, 503, 504])
def test_undecided_retryable_and_failed_answers_are_not_kept(status):
    assert not is_final(status)


def test_the_decision_on_a_record():
    assert decide(None, "fp") is Action.RUN
    assert decide(parse_record(in_flight_record("fp")), "fp") is Action.WAIT
    assert decide(parse_record(in_flight_record("fp")), "other") is Action.CONFLICT
    stored = parse_record(answer_record("fp", 409, [], b"{}"))
    assert decide(stored, "fp") is Action.REPLAY
    assert decide(stored, "other") is Action.CONFLICT
    assert decide(parse_record(b"not json"), "fp") is Action.CONFLICT  # never run twice on garbage


def test_an_answer_record_keeps_the_body_byte_for_byte_and_only_the_replayable_headers():
    body = bytes(range(256))
    headers = kept_headers([(b"content-type", b"application/json"), (b"x-request-id", b"r1"),
                            (b"Location", b"/orders/1"), (b"retry-after", b"1"), (b"content-length", b"3")])
    assert headers == [["content-type", "application/json"], ["Location", "/orders/1"], ["retry-after", "1"]]
    record = parse_record(answer_record("fp", 201, headers, body))
    assert record["status"] == 201 and record["headers"] == headers
    assert idempotency.base64.b64decode(record["body"]) == body
    assert json.loads(in_flight_record("fp")) == {"fp": "fp", "state": IN_FLIGHT}


def test_keys_are_validated_as_the_command_id_dependency_does():
    assert valid_key("k-1") and valid_key("~" * 128) and valid_key("!")
    assert not valid_key(None) and not valid_key("") and not valid_key("a" * 129)
    assert not valid_key("has space") and not valid_key("tab\t") and not valid_key("é")
    assert record_key("k-1") == "idem:k-1"


# ------------------------------------------------------------------------------ the middleware
class FakeRedis:
    """The four calls the middleware makes, in memory (TTLs recorded, not enforced)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, float] = {}
        self.down = False
        self.vanish_after_gets: int | None = None  # delete the record after this many GETs

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("down")

    async def set(self, name, value, nx=False, px=None, ex=None):
        self._check()
        if nx and name in self.data:
            return None
        self.data[name] = value
        self.ttls[name] = px / 1000 if px else ex
        return True

    async def get(self, name):
        self._check()
        value = self.data.get(name)
        if self.vanish_after_gets is not None:
            self.vanish_after_gets -= 1
            if self.vanish_after_gets <= 0:
                self.data.pop(name, None)
                self.vanish_after_gets = None
        return value

    async def delete(self, name):
        self._check()
        return int(self.data.pop(name, None) is not None)


def make_app(redis: FakeRedis, settings: Settings = SETTINGS) -> tuple[FastAPI, list[dict]]:
    """A route that answers with the status its body asks for, and counts its runs."""
    app = FastAPI()
    app.state.settings, app.state.redis = settings, redis
    install_problem_handlers(app)
    runs: list[dict] = []

    @app.post("/things")
    async def things(request: Request):
        body = await request.json()
        runs.append(body)
        return JSONResponse({"run": len(runs), **body}, status_code=body.get("status", 201),
                            headers={"Location": f"/things/{len(runs)}", "X-Other": "x"})

    app.add_middleware(IdempotencyMiddleware)
    return app, runs


def bearer(subject: str = "tests") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SETTINGS, subject, Role.OPERATOR)}"}


async def post(app: FastAPI, body: dict, key: str | None = "k-1", headers: dict | None = None,
               path: str = "/things") -> httpx.Response:
    headers = {**bearer(), **({"Idempotency-Key": key} if key else {}), **(headers or {})}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post(path, json=body, headers=headers)


async def test_a_final_answer_is_replayed_byte_for_byte_and_the_route_runs_once():
    redis = FakeRedis()
    app, runs = make_app(redis)
    first = await post(app, {"status": 409})
    again = await post(app, {"status": 409})
    assert len(runs) == 1
    assert (again.status_code, again.content) == (first.status_code, first.content) == (409, first.content)
    assert again.headers["location"] == "/things/1" and "x-other" not in again.headers
    assert again.headers[REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first.headers
    assert redis.ttls[record_key("k-1")] == SETTINGS.idempotency_ttl_s


@pytest.mark.parametrize("status", [202, 500])
async def test_an_undecided_or_failed_answer_is_not_kept_and_the_retry_runs(status):
    redis = FakeRedis()
    app, runs = make_app(redis)
    assert (await post(app, {"status": status})).status_code == status
    assert redis.data == {}
    assert (await post(app, {"status": status})).status_code == status
    assert len(runs) == 2


async def test_another_body_path_or_principal_with_the_key_is_refused():
    app, runs = make_app(FakeRedis())
    await post(app, {"quantity": 1})
    for refused in (await post(app, {"quantity": 2}), await post(app, {"quantity": 1}, path="/things?x=1"),
                    await post(app, {"quantity": 1}, headers=bearer("someone-else"))):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/idempotency-key-reused")
        assert refused.json()["title"] == "Idempotency key reused"
    assert len(runs) == 1


async def test_requests_without_key_or_credentials_or_with_a_bad_key_pass_through_unrecorded():
    redis = FakeRedis()
    app, runs = make_app(redis)
    await post(app, {}, key=None)
    await post(app, {}, key=None)
    await post(app, {}, key="bad key")
    await post(app, {}, headers={"Authorization": "Bearer nonsense"})
    await post(app, {}, headers={"Authorization": ""})
    assert len(runs) == 5 and redis.data == {}


async def test_a_retry_waits_for_the_request_in_flight_and_runs_when_its_marker_vanishes():
    redis = FakeRedis()
    app, runs = make_app(redis)
    fp = fingerprint("POST", "/things", "user:tests", b'{"a":1}')
    redis.data[record_key("k-1")] = in_flight_record(fp)
    redis.vanish_after_gets = 2  # the first request ends undecided while this one waits
    assert (await post(app, {"a": 1})).status_code == 201
    assert len(runs) == 1 and decide(parse_record(redis.data[record_key("k-1")]), fp) is Action.REPLAY


async def test_a_request_still_in_flight_at_the_deadline_is_answered_409(monkeypatch):
    monkeypatch.setattr(idempotency, "_WAIT_SLACK_S", -SETTINGS.command_timeout_s)  # no wait at all
    redis = FakeRedis()
    app, runs = make_app(redis)
    redis.data[record_key("k-1")] = in_flight_record(fingerprint("POST", "/things", "user:tests", b'{"a":1}'))
    busy = await post(app, {"a": 1})
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert busy.json()["title"] == "Request in progress" and runs == []


async def test_without_redis_the_request_passes_through():
    redis = FakeRedis()
    redis.down = True
    app, runs = make_app(redis)
    assert (await post(app, {})).status_code == 201
    assert (await post(app, {})).status_code == 201
    assert len(runs) == 2
