"""``Idempotency-Key`` on POSTs: the first final answer to a key is replayed, kept in Redis.

The key is the command's id (api/deps.py ``CommandIdDep``), which the workers already
deduplicate: a retried command is applied once and answered with its original outcome. What the
stream cannot do is tell a retry from a *different* request that reuses the key, nor spare the
retry its trip through Kafka. So ``IdempotencyMiddleware`` (pure ASGI: the WebSocket, the
lifespan and every non-POST pass untouched) keeps, under ``idem:<key>`` in Redis, the request's
fingerprint (sha256 of method, path with query, the principal's actor and the raw body) and,
once the answer is final, the answer itself:

- absent: an in-flight marker is taken (SET NX, short TTL), the request runs, and a final answer
  (``is_final``) is stored for ``idempotency_ttl_s``; an undecided one (202: a retry must ask the
  stream again) or a failure (5xx) drops the marker, so the next retry runs;
- another fingerprint: 422 ``idempotency-key-reused``, also for another principal's key (the
  key is global, as command ids are; another principal's answer is never replayed);
- same fingerprint, stored: replayed byte for byte, with ``Idempotent-Replayed: true``;
- same fingerprint, in flight: wait (bounded) for the answer and replay it; when the marker
  vanishes, run the request; 409 ``request-in-progress`` with Retry-After at the deadline.

Only requests that carry a valid key (as ``CommandIdDep`` checks it) and valid credentials take
part: the others reach their route, which answers the 422 or 401, and nothing is recorded. When
Redis fails the request passes through with a warning: the stream's command-id dedup still
applies the effect once, only the replay of the answer is lost.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from enum import StrEnum
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, TypeVar

from redis.exceptions import RedisError
from starlette.requests import Request

from api.problems import Problem, problem_response
from api.security import principal_of

__all__ = ["IdempotencyMiddleware", "Action", "decide", "fingerprint", "is_final", "valid_key",
           "record_key", "in_flight_record", "answer_record", "parse_record", "kept_headers",
           "REPLAYED_HEADER", "IN_FLIGHT"]

log = logging.getLogger(__name__)
T = TypeVar("T")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEY_HEADER = b"idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
IN_FLIGHT = "in-flight"
# The answer's headers worth replaying; the others (request id, content-length) are the replay's own.
_KEPT = frozenset({b"content-type", b"location", b"retry-after"})
# As api/deps.py CommandIdDep validates the header: 1 to 128 printable ASCII characters.
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# 4xx answers a retry may change: credentials, role, a timeout, the rate limit.
_RETRYABLE_4XX = frozenset({401, 403, 408, 429})
# No key semantics under /auth/: these send no command, and an answer may hold a secret (a token,
# a new API key) that must not be kept in Redis for a day.
_EXEMPT_PREFIX = "/auth/"
_POLL_S = 0.05
_MARKER_SLACK_S = 30.0  # the in-flight marker outlives the request's own bound by this much
_WAIT_SLACK_S = 5.0     # a retry waits for the first request this much longer than its bound
_REDIS_TIMEOUT_S = 1.0  # a Redis call that takes longer counts as Redis being down
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


# ------------------------------------------------------------------------------ pure decisions
class Action(StrEnum):
    RUN = "run"            # no record: take the marker and run the request
    CONFLICT = "conflict"  # the key belongs to another request
    REPLAY = "replay"      # the same request's final answer is stored
    WAIT = "wait"          # the same request is in flight


def valid_key(value: str | None) -> bool:
    return value is not None and _VALID_KEY.fullmatch(value) is not None


def record_key(key: str) -> str:
    """Global, not per principal: the key is a command id, and those are global in the stream."""
    return f"idem:{key}"


def fingerprint(method: str, path: str, actor: str, body: bytes) -> str:
    """sha256 of the request's parts, each length-prefixed so that no two splits collide."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), actor.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def is_final(status: int) -> bool:
    """Whether an answer is the request's outcome for good, so a retry gets it replayed: 2xx but
    202 (undecided in time: the retry asks the stream, which answers with the original outcome),
    and 4xx but the ones a retry may change. Never a 5xx."""
    if 200 <= status < 300:
        return status != 202
    return 400 <= status < 500 and status not in _RETRYABLE_4XX


def decide(record: dict[str, Any] | None, fp: str) -> Action:
    if record is None:
        return Action.RUN
    if record.get("fp") != fp:
        return Action.CONFLICT
    return Action.WAIT if record.get("state") == IN_FLIGHT else Action.REPLAY


def kept_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers
            if name.lower() in _KEPT]


def in_flight_record(fp: str) -> bytes:
    return json.dumps({"fp": fp, "state": IN_FLIGHT}).encode()


def answer_record(fp: str, status: int, headers: list[list[str]], body: bytes) -> bytes:
    return json.dumps({"fp": fp, "status": status, "headers": headers,
                       "body": base64.b64encode(body).decode()}).encode()


def parse_record(raw: bytes | None) -> dict[str, Any] | None:
    """None when absent; an unreadable record is ``{}``, which matches no fingerprint (refused,
    never run twice)."""
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


# ------------------------------------------------------------------------------ the middleware
class RedisDown(Exception):
    """A Redis call failed or timed out: the request goes on without idempotency records."""


class IdempotencyMiddleware:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key_of(scope)
        redis = getattr(scope["app"].state, "redis", None) if key is not None else None
        if redis is None:
            await self.app(scope, receive, send)
            return
        try:
            principal = await principal_of(Request(scope))
        except Problem:
            principal = None  # bad credentials: the route answers 401
        if principal is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return  # the client is gone before it sent its request: nothing to run or record
        receive = _replaying(body, receive)
        fp = fingerprint(scope["method"], _target(scope), principal.actor, body)
        try:
            await _Keyed(self.app, redis, scope["app"].state.settings, key, fp).handle(scope, receive, send)
        except RedisDown as exc:
            log.warning("idempotency records unavailable, request not recorded",
                        extra={"error": repr(exc.__cause__)})
            await self.app(scope, receive, send)


class _Keyed:
    """One keyed request: the loop over the record until it runs, replays or is refused."""

    def __init__(self, app, redis, settings, key: str, fp: str) -> None:
        self.app, self.redis, self.fp = app, redis, fp
        self.name = record_key(key)
        self.ttl_s = settings.idempotency_ttl_s
        self.marker_ms = int((settings.command_timeout_s + _MARKER_SLACK_S) * 1000)
        self.wait_s = settings.command_timeout_s + _WAIT_SLACK_S

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Raises RedisDown before the request runs, never after (it must run once at most)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            if await self._call(self.redis.set(self.name, in_flight_record(self.fp), nx=True, px=self.marker_ms)):
                await self._run(scope, receive, send)
                return
            record = parse_record(await self._call(self.redis.get(self.name)))
            action = decide(record, self.fp)
            if action is Action.CONFLICT:
                await _reused(scope, receive, send)
                return
            if action is Action.REPLAY:
                await _replay(record, send)
                return
            # WAIT, or RUN: the marker vanished since (its request ended undecided): take it.
            if time.monotonic() >= deadline:
                await _in_progress(scope, receive, send)
                return
            await asyncio.sleep(_POLL_S)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = _Capture(send)
        try:
            await self.app(scope, receive, answer.send)
        except BaseException:
            await self._quietly(self.redis.delete(self.name))
            raise
        if answer.complete and is_final(answer.status):
            record = answer_record(self.fp, answer.status, answer.headers, answer.body)
            await self._quietly(self.redis.set(self.name, record, ex=self.ttl_s))
        else:  # undecided or failed: the next retry runs again (the stream answers it)
            await self._quietly(self.redis.delete(self.name))

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT_S):
                return await call
        except _REDIS_ERRORS as exc:
            raise RedisDown() from exc

    async def _quietly(self, call: Awaitable[Any]) -> None:
        """After the request ran: a failure loses the record (a retry runs again), logged."""
        try:
            await self._call(call)
        except RedisDown as exc:
            log.warning("idempotency record not written", extra={"error": repr(exc.__cause__)})


class _Capture:
    """Passes the answer on and keeps a copy of it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500
        self.headers: list[list[str]] = []
        self.chunks: list[bytes] = []
        self.complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = kept_headers(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)


# ------------------------------------------------------------------------------ helpers
def _key_of(scope: Scope) -> str | None:
    """The valid Idempotency-Key of a POST that has key semantics, else None (passes through)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].startswith(_EXEMPT_PREFIX):
        return None
    for name, value in scope.get("headers", ()):
        if name == KEY_HEADER:
            key = value.decode("latin-1")
            return key if valid_key(key) else None  # an invalid one: the route answers 422
    return None


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    return scope["path"] + ("?" + query.decode("latin-1") if query else "")


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body once more for the app, then the client's own messages (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()
    return replay


async def _replay(record: dict[str, Any], send: Send) -> None:
    body = base64.b64decode(record["body"])
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in record["headers"]]
    headers += [(b"content-length", str(len(body)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]
    await send({"type": "http.response.start", "status": record["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _reused(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        422, "Idempotency key reused", "this Idempotency-Key was used for a different request "
        "(another path, body or principal): use a new key for a new request",
        "idempotency-key-reused", scope["path"])
    await response(scope, receive, send)


async def _in_progress(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        409, "Request in progress", "a request with this Idempotency-Key is still being handled: "
        "retry shortly", "request-in-progress", scope["path"], headers={"Retry-After": "1"})
    await response(scope, receive, send)
