from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status

from api.security import websocket_principal

router = APIRouter(tags=["live"])


@router.websocket("/ws/inventory")
async def inventory_updates(
    websocket: WebSocket,
    product_id: str | None = Query(None, description="only this product's events"),
    warehouse: str | None = Query(None, description="only this warehouse's events"),
):
    """Every stock event once it is durable, as JSON (filter by product and/or warehouse).

    Needs a viewer's credentials: a bearer token (the ``Authorization`` header, or the
    ``access_token`` query parameter for browsers, which cannot set headers on a WebSocket) or an
    ``X-API-Key``; without them the handshake is refused (HTTP 403, close code 1008).

    Sends ``{"type": "subscribed", ...}`` first. A client that falls 1000 events behind is
    closed with code 1013 and should reconnect and re-read ``GET /inventory/{product_id}``.
    """
    if await websocket_principal(websocket) is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="credentials required")
        return
    hub = websocket.app.state.hub
    await websocket.accept()
    async with hub.subscribe(product_id, warehouse) as sub:
        await websocket.send_json({"type": "subscribed", "product_id": product_id,
                                   "warehouse": warehouse})
        receiver = asyncio.create_task(_drain_client(websocket))
        try:
            while not receiver.done():
                getter = asyncio.create_task(sub.queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                await websocket.send_json(getter.result())
                if sub.overflowed and sub.queue.empty():
                    await websocket.close(code=1013, reason="subscriber too slow")
                    return
        except WebSocketDisconnect:
            pass
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await receiver


async def _drain_client(websocket: WebSocket) -> None:
    """Reads (and ignores) client frames, so a disconnect is noticed."""
    while True:
        await websocket.receive_text()
