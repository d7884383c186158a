"""WS /ws/inventory: the stock events, live, resumable from the offset a client saw last."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status

from api.security import websocket_principal
from api.subscriptions import ReplayTooLong, SubscriberTooSlow, check_replay, ledger_head, watch

__all__ = ["router", "CLOSE_GONE", "CLOSE_TOO_SLOW"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

#: Closed: the client is further behind than the replay limit; the missed events are not sent
#: (re-read the levels, then subscribe afresh). 4xxx: the application's own codes (RFC 6455);
#: 4410 echoes HTTP 410 Gone.
CLOSE_GONE = 4410
#: Closed: the client read slower than the events came (the server's queue for it overflowed).
CLOSE_TOO_SLOW = 1013


@router.websocket("/ws/inventory")
async def inventory_updates(
    websocket: WebSocket,
    product_id: str | None = Query(None, description="only this product's events"),
    warehouse: str | None = Query(None, description="only this warehouse's events"),
    after: int | None = Query(None, ge=0, description="the last offset received: resume after it"),
):
    """Every stock event once it is durable, as JSON (filter by product and/or warehouse).

    Needs a viewer's credentials: a bearer token (the ``Authorization`` header, or the
    ``access_token`` query parameter for browsers, which cannot set headers on a WebSocket) or an
    ``X-API-Key``; without them the handshake is refused (HTTP 403, close code 1008).

    Sends ``{"type": "subscribed", "product_id": ..., "warehouse": ..., "after": N}`` first: the
    events that follow are exactly those with an offset above N (a new subscription: the
    ledger's last offset when it started). Each event message has an ``offset``, its place in the
    ledger, increasing (not consecutive); a ``LowStock`` alert follows its event, with the same
    offset. A client that lost its connection reconnects with ``?after=<the last offset it
    received>`` and first gets every event it missed, in order, then the live ones: none twice,
    none missing.

    Closed with code 4410 ("gone") when more than ``INVENTORY_SUBSCRIPTION_REPLAY_MAX`` events
    (100,000) were missed: re-read ``GET /inventory/{product_id}``, then subscribe without
    ``after``. A client that falls 1000 events behind the live stream is closed with code 1013
    and may reconnect with ``after`` like any other.
    """
    if await websocket_principal(websocket) is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="credentials required")
        return
    app = websocket.app
    await websocket.accept()
    replay_max = app.state.settings.subscription_replay_max
    try:
        if after is None:
            after = await ledger_head(app.state.engine)
        else:
            await check_replay(app.state.engine, after, product_id, warehouse, replay_max)
    except ReplayTooLong as exc:
        await websocket.close(code=CLOSE_GONE, reason=str(exc)[:120])
        return
    await websocket.send_json({"type": "subscribed", "product_id": product_id, "warehouse": warehouse,
                               "after": after})
    messages = watch(app.state.hub, app.state.engine, product_id=product_id, warehouse=warehouse,
                     after=after, replay_max=replay_max)
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        await _forward(websocket, messages, receiver)
    except WebSocketDisconnect:
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver
        await messages.aclose()


async def _forward(websocket: WebSocket, messages, receiver: asyncio.Task) -> None:
    """Sends ``messages`` until the client leaves, or the subscription ends (closed with why)."""
    while not receiver.done():
        getter = asyncio.ensure_future(anext(messages))
        done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
            return
        try:
            message = getter.result()
        except SubscriberTooSlow:
            await websocket.close(code=CLOSE_TOO_SLOW, reason="subscriber too slow")
            return
        except ReplayTooLong as exc:  # checked before already; the ledger moved on meanwhile
            await websocket.close(code=CLOSE_GONE, reason=str(exc)[:120])
            return
        await websocket.send_json(message)


async def _drain_client(websocket: WebSocket) -> None:
    """Reads (and ignores) client frames, so a disconnect is noticed."""
    while True:
        await websocket.receive_text()
