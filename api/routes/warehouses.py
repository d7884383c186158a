"""Warehouses: each has a capacity that is a hard limit across all its SKUs, kept by its own
single writer, the capacity ledger (streams/warehouses/): a receipt holds space there before the
SKU's owner takes the units in."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, status

from api.deps import CommandIdDep, EngineDep, GatewayDep
from api.models import PendingOut, TotalsOut, TransferIn, TransferOut, WarehouseIn, WarehouseOut
from api.outcomes import decided, level_of
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Admin, Operator, Viewer
from storage.queries import get_product, get_warehouses
from streams.warehouses.records import CreateWarehouse, ReceiveStock

router = APIRouter(prefix="/warehouses", tags=["warehouses"])
WarehouseId = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$", examples=["leeds-1"])


@router.post("", dependencies=[Admin], status_code=status.HTTP_201_CREATED, response_model=WarehouseOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_warehouse(warehouse: WarehouseIn, gateway: GatewayDep, command_id: CommandIdDep):
    """Create a warehouse with its capacity in units. 409 if the id exists."""
    body = CreateWarehouse(warehouse.name, warehouse.location, warehouse.capacity)
    event = decided(await gateway.execute_warehouse(command_id, warehouse.warehouse_id, body), command_id)
    if not isinstance(event, dict):
        return event
    return WarehouseOut(warehouse_id=event["warehouse_id"], name=event["name"], location=event["location"],
                        capacity=event["capacity"], stored=event["stored"], held=event["held"],
                        free=event["capacity"] - event["stored"] - event["held"],
                        totals=TotalsOut.of(0, 0), skus=0, version=event["seq"])


@router.get("", dependencies=[Viewer], response_model=list[WarehouseOut], responses=PROBLEM_RESPONSES)
async def list_warehouses(engine: EngineDep):
    """Every warehouse with its stock totals (over its SKUs) and its free capacity."""
    async with engine.connect() as conn:
        return [_out(row) for row in await get_warehouses(conn)]


@router.get("/{warehouse_id}", dependencies=[Viewer],
            response_model=WarehouseOut, responses=PROBLEM_RESPONSES)
async def get_warehouse(engine: EngineDep, warehouse_id: str = WarehouseId):
    async with engine.connect() as conn:
        rows = await get_warehouses(conn, warehouse_id)
    if not rows:
        raise Problem(404, "Unknown warehouse", f"no warehouse {warehouse_id}")
    return _out(rows[0])


def _out(row: dict[str, Any]) -> WarehouseOut:
    totals = TotalsOut.of(*(int(row[c]) for c in ("on_hand", "reserved", "incoming", "preordered")))
    return WarehouseOut(warehouse_id=row["warehouse_id"], name=row["name"], location=row["location"],
                        capacity=row["capacity"], stored=row["stored"], held=row["held"],
                        free=row["capacity"] - row["stored"] - row["held"], totals=totals,
                        skus=int(row["skus"]), version=row["version"])


@router.post("/{warehouse_id}/transfer", dependencies=[Operator],
             status_code=status.HTTP_201_CREATED, response_model=TransferOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def transfer(request: TransferIn, gateway: GatewayDep, engine: EngineDep, command_id: CommandIdDep,
                   warehouse_id: str = WarehouseId):
    """Move units to another warehouse: space is held at the destination first (409
    `CAPACITY_EXCEEDED`), then they leave this one (409 when fewer are available), travel, and
    arrive; on hand plus in transit never changes. The transfer's id is the command's."""
    if request.destination == warehouse_id:
        raise Problem(422, "Invalid transfer", "the destination is the source")
    async with engine.connect() as conn:
        if await get_product(conn, request.product_id) is None:
            raise Problem(404, "Unknown product", f"no product {request.product_id}")
    body = ReceiveStock(request.product_id, request.quantity, request.reason, source=warehouse_id)
    event = decided(await gateway.execute_warehouse(command_id, request.destination, body), command_id)
    if not isinstance(event, dict):
        return event
    return TransferOut(transfer_id=command_id, product_id=event["sku"], source=warehouse_id,
                       destination=request.destination, quantity=request.quantity, state="IN_TRANSIT",
                       source_level=level_of(event))
