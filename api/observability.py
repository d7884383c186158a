"""Request ids, access logs and Prometheus metrics for the API.

``ObservabilityMiddleware`` (pure ASGI, so streaming responses and the WebSocket pass untouched)
gives every HTTP request an id: the client's ``X-Request-ID`` when it is a sane token (1 to 128
characters of ``[A-Za-z0-9._:-]``; anything else could forge log lines or blow up label or log
sizes), else a fresh uuid4. The id is returned in the ``X-Request-ID`` response header, held in
a context variable while the request is handled, so ``RequestIdFilter`` adds it to every log
record made meanwhile, and sent with every command as a Kafka record header (api/gateway.py),
which the workers log on rejections and dead letters (streams/partition/agent.py). Each
request ends with one access log line (method, route, status, duration_ms, request_id) and its
metrics (api/metrics.py), labelled by the route's template, never the raw path.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any, Awaitable, Callable, MutableMapping

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import Response

from api.metrics import observe_request

__all__ = ["ObservabilityMiddleware", "RequestIdFilter", "install_observability", "current_request_id",
           "valid_request_id", "route_label", "REQUEST_ID_HEADER", "UNMATCHED"]

access_log = logging.getLogger("api.access")

REQUEST_ID_HEADER = "x-request-id"
UNMATCHED = "<unmatched>"  # the route label of a request no route matched (a 404)
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return _request_id.get()


def valid_request_id(value: str | None) -> bool:
    return value is not None and _SANE.fullmatch(value) is not None


def route_label(scope: Scope) -> str:
    """The template of the route that handled the request (the router puts it in the scope)."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if valid_request_id(candidate) else None
    return None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record made while a request is handled. On the handler, not
    a logger: a logger's filters do not see its children's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = _request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class ObservabilityMiddleware:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the WebSocket and the lifespan pass untouched
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or str(uuid.uuid4())
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())
        status = 500  # unless a response starts: an exception the app did not answer

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_label(scope)
            observe_request(scope["method"], route, status, seconds)
            access_log.info("request", extra={
                "method": scope["method"], "route": route, "status": status,
                "duration_ms": round(seconds * 1000, 2), "request_id": request_id})
            _request_id.reset(token)


async def metrics() -> Response:
    """The process's metrics in Prometheus' text format. No authentication: Prometheus scrapes
    it on the internal network, like ``/health``; the figures name routes and topics, no data."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def install_observability(app: FastAPI) -> None:
    """The middleware (outermost of the app's own, so it sees every answer), ``GET /metrics``,
    and the request-id filter on the root handlers (configure_logging has set them up)."""
    app.add_middleware(ObservabilityMiddleware)
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
