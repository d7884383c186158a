from __future__ import annotations

import uuid

from fastapi import APIRouter, Header, Path, status

from api.deps import CommandIdDep, EngineDep, GatewayDep, SettingsDep
from api.models import PendingOut, ReservationIn, ReservationOut, ReservationStateOut
from api.outcomes import decided, level_of, moment
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Operator, Viewer
from storage.queries import get_order, get_product, get_reservation
from streams.stock.records import Commit, Release, Reserve

router = APIRouter(prefix="/reservations", tags=["reservations"])
ReservationId = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$", examples=["res-7731-1"])
_RESERVATION_IDS = uuid.UUID("0b7d7d0e-5a7b-4f25-8b0c-7f3c2e4d1a90")


def _out(event: dict, command_id: str) -> ReservationOut:
    body = event["body"]
    return ReservationOut(reservation_id=body["reservation_id"], order_id=body["order_id"],
                          product_id=event["sku"], warehouse=event["warehouse"],
                          quantity=body["quantity"], state=body["state"], command_id=command_id,
                          expires_at=moment(body.get("expires_at")), level=level_of(event),
                          awaiting=body.get("awaiting", 0))  # only a Reserved has it: an ended hold awaits none


@router.post("", dependencies=[Operator],
             status_code=status.HTTP_201_CREATED, response_model=ReservationOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def reserve(request: ReservationIn, gateway: GatewayDep, engine: EngineDep,
                  settings: SettingsDep, command_id: CommandIdDep,
                  idempotency_key: str | None = Header(None, include_in_schema=False)):
    """Hold stock for a pending order. 409 when not enough is available.

    A pre-order (`preorder`) holds the units available first and the rest from the warehouse's
    incoming units (`awaiting` of them): 409 when both together do not cover it. A receipt into
    the warehouse turns its awaiting units into ordinary reserved ones, oldest pre-order first."""
    # With an Idempotency-Key, a retry must name the same reservation.
    reservation_id = request.reservation_id or (
        str(uuid.uuid5(_RESERVATION_IDS, idempotency_key)) if idempotency_key else str(uuid.uuid4()))
    async with engine.connect() as conn:
        if await get_product(conn, request.product_id) is None:
            raise Problem(404, "Unknown product", f"no product {request.product_id}")
        existing = await get_reservation(conn, reservation_id)
    if existing is not None and existing["sku"] != request.product_id:
        raise Problem(409, "Reservation exists", f"reservation {reservation_id} is for another product")
    ttl_s = request.ttl_seconds or settings.reservation_ttl_s
    body = Reserve(reservation_id, request.order_id, request.warehouse or settings.default_warehouse,
                   request.quantity, ttl_ms=ttl_s * 1000, preorder=request.preorder)
    event = decided(await gateway.execute(command_id, request.product_id, body), command_id)
    return _out(event, command_id) if isinstance(event, dict) else event


@router.get("/{reservation_id}", dependencies=[Viewer],
            response_model=ReservationStateOut, responses=PROBLEM_RESPONSES)
async def get_reservation_state(engine: EngineDep, reservation_id: str = ReservationId):
    """A reservation as of the last acknowledged change."""
    async with engine.connect() as conn:
        row = await get_reservation(conn, reservation_id)
    if row is None:
        raise Problem(404, "Unknown reservation", f"no reservation {reservation_id}")
    return ReservationStateOut(product_id=row["sku"], **{
        k: row[k] for k in ("reservation_id", "order_id", "warehouse", "quantity", "state",
                            "updated_at", "expires_at", "awaiting")})


async def _end(kind: type, reservation_id: str, gateway, engine, command_id: str, retry: bool):
    async with engine.connect() as conn:
        row = await get_reservation(conn, reservation_id)
        order = None if row is None else await get_order(conn, row["order_id"])
    if row is None:
        raise Problem(404, "Unknown reservation", f"no reservation {reservation_id}")
    if order is not None and _is_part_of(order, reservation_id):
        # Its order's saga ends it: released or committed here, the order would say it holds
        # what it does not.
        raise Problem(409, "Reservation belongs to an order",
                      f"reservation {reservation_id} holds a line of order {order['order_id']}: "
                      f"cancel or fulfil the order", reason="MANAGED_BY_ORDER")
    # A request with an Idempotency-Key may be the retry of the call that ended it: the worker
    # answers that one with the original outcome. Any other call on an ended one is refused here.
    if row["state"] != "PENDING" and not retry:
        raise Problem(409, "Reservation not pending", f"reservation {reservation_id} is {row['state']}",
                      reason="RESERVATION_NOT_PENDING")
    event = decided(await gateway.execute(command_id, row["sku"], kind(reservation_id)), command_id)
    return _out(event, command_id) if isinstance(event, dict) else event


def _is_part_of(order: dict, reservation_id: str) -> bool:
    return any(part["reservation_id"] == reservation_id for line in order["lines"] for part in line["parts"])


@router.post("/{reservation_id}/release", dependencies=[Operator], response_model=ReservationOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def release(gateway: GatewayDep, engine: EngineDep, command_id: CommandIdDep,
                  reservation_id: str = ReservationId,
                 idempotency_key: str | None = Header(None, include_in_schema=False)):
    """End a pending reservation: the order was cancelled, the units are available again (a
    pre-order's units that have not arrived: pre-orderable again). 409 `MANAGED_BY_ORDER` for
    a part of an order placed with `POST /orders`: cancel the order instead."""
    return await _end(Release, reservation_id, gateway, engine, command_id, idempotency_key is not None)


@router.post("/{reservation_id}/commit", dependencies=[Operator], response_model=ReservationOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def commit(gateway: GatewayDep, engine: EngineDep, command_id: CommandIdDep,
                 reservation_id: str = ReservationId,
                 idempotency_key: str | None = Header(None, include_in_schema=False)):
    """Fulfil a pending reservation: the units leave the warehouse. 409 `PREORDER_NOT_ARRIVED`
    while units of a pre-order have not arrived; 409 `MANAGED_BY_ORDER` for a part of an order
    placed with `POST /orders`: fulfil the order instead."""
    return await _end(Commit, reservation_id, gateway, engine, command_id, idempotency_key is not None)
