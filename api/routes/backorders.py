"""Explicit backorders: an order of one product that waits for stock when there is not enough.

A backorder is an order line that waits (streams/orders/ and the FIFO queue of its SKU's owner,
streams/stock/logic.py), so it is placed and answered like an order (``GET /orders/{id}``)."""
from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CommandIdDep, EngineDep, GatewayDep, SettingsDep
from api.models import BackorderIn, OrderIn, OrderLineIn, OrderOut, PendingOut
from api.problems import PROBLEM_RESPONSES
from api.security import Operator
from api.routes.orders import place_order

router = APIRouter(prefix="/backorders", tags=["orders"])


@router.post("", dependencies=[Operator], status_code=status.HTTP_201_CREATED, response_model=OrderOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_backorder(backorder: BackorderIn, gateway: GatewayDep, engine: EngineDep,
                           settings: SettingsDep, command_id: CommandIdDep):
    """Order a product whether or not it is in stock: RESERVED when the units are there now,
    BACKORDERED otherwise; waiting backorders of a SKU are served first, in the order they came,
    as soon as stock arrives (a receipt, a transfer in, a release, an expiry; with
    `allow_preorders`, also units announced as incoming: PREORDERED until they arrive). Its id is an
    order's: follow it with `GET /orders/{id}`, cancel it with `POST /orders/{id}/cancel`."""
    order = OrderIn(order_id=backorder.backorder_id, customer=backorder.customer,
                    lines=[OrderLineIn(product_id=backorder.product_id, quantity=backorder.quantity)],
                    preferred_warehouse=backorder.preferred_warehouse, allow_backorders=True,
                    allow_preorders=backorder.allow_preorders)
    return await place_order(order, gateway, engine, settings, command_id)
