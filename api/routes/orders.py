"""Orders: each is a saga run by the order's own single writer (streams/orders/): every line is
reserved at its SKU's owner, split over warehouses when need be, or the order holds nothing."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, status
from fastapi.responses import JSONResponse

from api.deps import CommandIdDep, EngineDep, GatewayDep, SettingsDep
from api.models import AllocationOut, OrderIn, OrderLineOut, OrderOut, PendingOut
from api.outcomes import decided, pending
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Operator, Viewer
from storage.queries import get_order, get_products
from streams.orders.records import MAX_LINES, CancelOrder, FulfilOrder, OrderLine, PlaceOrder

router = APIRouter(prefix="/orders", tags=["orders"])
OrderId = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$", examples=["order-7731"])


def order_out(order: dict[str, Any]) -> OrderOut:
    """From an order event's snapshot (as announced) or the read model's row."""
    lines = [OrderLineOut(line=line["line"], product_id=line["sku"], quantity=line["quantity"],
                          state=line["state"],
                          allocation=[AllocationOut(**part) for part in line["parts"]])
             for line in order["lines"]]
    return OrderOut(order_id=order["order_id"], customer=order["customer"], status=order["status"],
                    preferred_warehouse=order["preferred_warehouse"],
                    allow_backorders=order["allow_backorders"], allow_preorders=order["allow_preorders"],
                    strategy=order["strategy"], lines=lines, version=order.get("seq", order.get("version", 0)))


@router.post("", dependencies=[Operator], status_code=status.HTTP_201_CREATED, response_model=OrderOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def place_order(order: OrderIn, gateway: GatewayDep, engine: EngineDep, settings: SettingsDep,
                      command_id: CommandIdDep):
    """Place an order: 201 with its status once its saga settles. RESERVED: every line is held
    (from the preferred warehouse first, then by the allocation strategy; a line may be split);
    REJECTED: a line could not be served, and nothing is held (lines already reserved are
    released again). 404 for an unknown product; 202 if the saga has not settled in time.

    With `allow_preorders`, a line the units on hand do not cover may hold units announced as
    incoming (`POST /inventory/{product_id}/incoming`): the order is PREORDERED, each part showing
    the units it `awaiting`, and RESERVED once the receipts brought them all.

    A bundle holds no stock: its line is expanded into its components (the line's quantity times
    each component's units per bundle), summed with other lines of the same SKU. The order's
    lines, as placed and answered, are therefore the components, and the saga holds all of them
    or none: a bundle is reserved whole or not at all."""
    order_id = order.order_id or command_id
    async with engine.connect() as conn:
        existing = await get_order(conn, order_id)
        found = await get_products(conn, [line.product_id for line in order.lines])
    if existing is not None:  # a retry: the saga ran (or runs) once; answer with where it is
        return _existing(existing)
    if unknown := [line.product_id for line in order.lines if line.product_id not in found]:
        raise Problem(404, "Unknown product", f"no product {', '.join(unknown)}")
    lines = _expanded(order, found)
    if len(lines) > MAX_LINES:
        raise Problem(422, "Invalid order", f"{len(lines)} lines once bundles are expanded, at most {MAX_LINES}")
    body = PlaceOrder(order.customer, tuple(OrderLine(sku, quantity) for sku, quantity in lines.items()),
                      order.preferred_warehouse or "", order.allow_backorders,
                      order.strategy or settings.allocation_strategy, tuple(settings.warehouse_priority),
                      allow_preorders=order.allow_preorders)
    event = decided(await gateway.execute_order(command_id, order_id, body), command_id)
    return order_out(event) if isinstance(event, dict) else event


def _expanded(order: OrderIn, products: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Units per SKU the order holds: a bundle's line as its components, each SKU once."""
    units: dict[str, int] = {}
    for line in order.lines:
        for sku, per_unit in (products[line.product_id]["components"] or {line.product_id: 1}).items():
            units[sku] = units.get(sku, 0) + line.quantity * per_unit
    return units


def _existing(order: dict[str, Any]) -> OrderOut | JSONResponse:
    if order["status"] == "PENDING":
        return pending(order["order_id"])
    return order_out(order)


@router.get("/{order_id}", dependencies=[Viewer], response_model=OrderOut, responses=PROBLEM_RESPONSES)
async def get_order_status(engine: EngineDep, order_id: str = OrderId):
    """The order's status and each line's allocation, as last acknowledged."""
    async with engine.connect() as conn:
        order = await get_order(conn, order_id)
    if order is None:
        raise Problem(404, "Unknown order", f"no order {order_id}")
    return order_out(order)


@router.post("/{order_id}/cancel", dependencies=[Operator], response_model=OrderOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def cancel_order(gateway: GatewayDep, command_id: CommandIdDep, order_id: str = OrderId):
    """Cancel a pending, backordered, pre-ordered or reserved order: every hold is released, also
    those of lines whose reservation is still on its way. 409 once it is fulfilled, rejected or
    cancelled."""
    event = decided(await gateway.execute_order(command_id, order_id, CancelOrder("cancelled by request")),
                    command_id)
    return order_out(event) if isinstance(event, dict) else event


@router.post("/{order_id}/fulfil", dependencies=[Operator], response_model=OrderOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def fulfil_order(gateway: GatewayDep, command_id: CommandIdDep, order_id: str = OrderId):
    """Fulfil a reserved order: every held unit leaves its warehouse. 409 unless RESERVED (a
    PREORDERED one's pre-ordered units have not all arrived)."""
    event = decided(await gateway.execute_order(command_id, order_id, FulfilOrder()), command_id)
    return order_out(event) if isinstance(event, dict) else event
