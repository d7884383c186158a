"""The gRPC service of schemas/inventory.proto, served by the API process beside REST.

Started in the API's lifespan (api/main.py) once the event hub listens, stopped before it, and
sharing the app's state: the engine for reads, the hub for the live stream, the credentials and
the rate limiter for auth. So a gRPC watcher sees exactly the events a WebSocket does, and a read
here answers as the REST read does (the same storage/queries.py functions).

Errors are statuses, never UNKNOWN for bad input: every handler is wrapped so that a refusal
(auth, validation, unknown product), the resume helper's errors and a database that does not
answer each end the call with their own code (api/grpc/mapping.py, api/grpc/auth.py).
"""
from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.grpc.auth import Refusal, authenticate
from api.grpc.generated import inventory_pb2 as pb
from api.grpc.generated import inventory_pb2_grpc as pb_grpc
from api.grpc.mapping import (invalid_id, levels_message, low_stock_limit, low_stock_message,
                              stream_status, update_message)
from api.subscriptions import watch
from common.settings import Settings
from storage.queries import get_in_transit, get_levels, get_low_stock, get_product

__all__ = ["InventoryService", "start_grpc", "stop_grpc"]

log = logging.getLogger(__name__)
# The read model away (connection refused, pool exhausted, server gone): retry later.
_UNAVAILABLE = (OSError, OperationalError, DBAPIError, PoolTimeoutError)
_UNAVAILABLE_DETAILS = "the read model does not answer: retry"


def _unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def handler(self: "InventoryService", request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Refusal as refusal:
            code, details = refusal.code, refusal.details
        except _UNAVAILABLE as exc:
            log.warning("gRPC read failed", extra={"method": method.__name__, "error": str(exc)})
            code, details = grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE_DETAILS
        await context.abort(code, details)
    return handler


def _streaming(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def handler(self: "InventoryService", request: Any,
                      context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            # aclosing: a cancelled call closes the watch at once (and so unsubscribes it from the
            # hub), not whenever the abandoned generator is collected.
            async with contextlib.aclosing(method(self, request, context)) as items:
                async for item in items:
                    yield item
            return
        except Refusal as refusal:
            code, details = refusal.code, refusal.details
        except _UNAVAILABLE as exc:
            log.warning("gRPC stream failed", extra={"method": method.__name__, "error": str(exc)})
            code, details = grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE_DETAILS
        except Exception as exc:
            if (status := stream_status(exc)) is None:
                raise
            code, details = status
        await context.abort(code, details)
    return handler


def _check_id(value: str, what: str) -> str:
    if (why := invalid_id(value, what)) is not None:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, why)
    return value


def _optional_id(request: Any, field: str) -> str | None:
    return _check_id(getattr(request, field), field) if request.HasField(field) else None


class InventoryService(pb_grpc.InventoryServicer):
    """The RPCs; ``state`` is the app's (engine, hub, credentials, limiter, settings)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    @_unary
    async def GetInventory(self, request: pb.GetInventoryRequest,
                           context: grpc.aio.ServicerContext) -> pb.InventoryLevels:
        await authenticate(self.state, context.invocation_metadata())
        product_id = _check_id(request.product_id, "product_id")
        async with self.state.engine.connect() as conn:
            if await get_product(conn, product_id) is None:
                raise Refusal(grpc.StatusCode.NOT_FOUND, f"no product {product_id}")
            rows = await get_levels(conn, product_id)
            in_transit = await get_in_transit(conn, product_id)
        return levels_message(product_id, rows, in_transit)

    @_unary
    async def ListLowStock(self, request: pb.ListLowStockRequest,
                           context: grpc.aio.ServicerContext) -> pb.LowStockList:
        await authenticate(self.state, context.invocation_metadata())
        warehouse = _optional_id(request, "warehouse")
        if (limit := low_stock_limit(request.limit)) is None:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "limit must be between 0 (default) and 5000")
        async with self.state.engine.connect() as conn:
            rows = await get_low_stock(conn, warehouse, limit)
        return low_stock_message(rows)

    @_streaming
    async def WatchInventory(self, request: pb.WatchRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Update]:
        # Like the WebSocket, a product that does not exist (yet) is no error: its stream is empty
        # until it is created.
        await authenticate(self.state, context.invocation_metadata())
        product_id = _optional_id(request, "product_id")
        warehouse = _optional_id(request, "warehouse")
        after = request.after_offset if request.HasField("after_offset") else None
        if after is not None and after < 0:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "after_offset must be 0 or more")
        settings: Settings = self.state.settings
        messages = watch(self.state.hub, self.state.engine, product_id=product_id, warehouse=warehouse,
                         after=after, replay_max=settings.subscription_replay_max)
        async with contextlib.aclosing(messages):
            async for message in messages:
                yield update_message(message)


async def start_grpc(state: Any, settings: Settings) -> grpc.aio.Server | None:
    """Serve on ``grpc_host:grpc_port``; None when off (port 0) or when the port is taken (logged:
    REST goes on without gRPC, as the workers go on without metrics)."""
    if not settings.grpc_port:
        return None
    # Without so_reuseport 0, gRPC binds with SO_REUSEPORT on Linux: a second API on the same
    # port would start "fine" and the kernel would split the calls between the two.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_InventoryServicer_to_server(InventoryService(state), server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        bound, error = 0, str(exc)
    else:
        error = "bind failed"
    if not bound:
        log.error("gRPC port unavailable, serving REST only", extra={"address": address, "error": error})
        return None
    await server.start()
    log.info("gRPC serving", extra={"address": address})
    return server


async def stop_grpc(server: grpc.aio.Server | None, grace_s: float) -> None:
    """Refuse new calls, let running ones finish within ``grace_s``, then cancel the rest (the
    watches, which never finish on their own: their clients resume from their last offset)."""
    if server is not None:
        await server.stop(grace_s)
