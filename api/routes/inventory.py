from __future__ import annotations

from fastapi import APIRouter, Path

from api.deps import CommandIdDep, EngineDep, GatewayDep, SettingsDep
from api.models import InventoryOut, LevelOut, PendingOut, StockUpdateIn, TotalsOut
from api.outcomes import decided, level_of
from api.problems import PROBLEM_RESPONSES, Problem
from storage.queries import get_levels, get_product
from streams.stock.records import AdjustStock

router = APIRouter(prefix="/inventory", tags=["inventory"])
ProductId = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$", examples=["SKU-TSHIRT-RED-M"])


@router.get("/{product_id}", response_model=InventoryOut, responses=PROBLEM_RESPONSES)
async def get_inventory(engine: EngineDep, product_id: str = ProductId):
    """Levels per warehouse and totals. Reflects every acknowledged change."""
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
        rows = await get_levels(conn, product_id)
    levels = [LevelOut(warehouse=r["warehouse"], on_hand=r["on_hand"], reserved=r["reserved"],
                       available=r["on_hand"] - r["reserved"]) for r in rows]
    totals = TotalsOut(available=sum(lv.available for lv in levels),
                       reserved=sum(lv.reserved for lv in levels),
                       total=sum(lv.on_hand for lv in levels))
    return InventoryOut(product_id=product_id, warehouses=levels, totals=totals,
                        version=max((r["version"] for r in rows), default=0))


@router.post("/{product_id}/update", response_model=LevelOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def update_inventory(update: StockUpdateIn, gateway: GatewayDep, engine: EngineDep,
                           settings: SettingsDep, command_id: CommandIdDep,
                           product_id: str = ProductId):
    """Receive (positive) or remove (negative) stock in one warehouse, with a reason.

    409 when removing more than is available (reserved units cannot be removed)."""
    if update.quantity_change == 0:
        raise Problem(422, "Invalid quantity", "quantity_change must not be 0")
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
    body = AdjustStock(update.warehouse or settings.default_warehouse, update.quantity_change,
                       update.reason)
    event = decided(await gateway.execute(command_id, product_id, body), command_id)
    return level_of(event) if isinstance(event, dict) else event
