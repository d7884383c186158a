from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import CacheDep, CommandIdDep, EngineDep, GatewayDep, SettingsDep
from api.models import (
    BundleAvailabilityOut, ComponentAvailabilityOut, IncomingIn, InventoryOut, IsoDateTime, LevelOut,
    LowStockOut, LowStockThresholdIn, PendingOut, StockUpdateIn, TotalsOut, VariantLevelsOut,
)
from api.outcomes import decided, level_of
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Operator, Viewer
from storage.queries import (
    get_available, get_in_transit, get_in_transit_as_of, get_levels, get_levels_as_of, get_low_stock,
    get_product, get_variants, get_variants_as_of, get_warehouses,
)
from streams.stock.records import AdjustStock, AnnounceIncoming, SetLowStockThreshold
from streams.warehouses.records import ReceiveStock

router = APIRouter(prefix="/inventory", tags=["inventory"])
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
ProductId = Path(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])


# Declared before /{product_id}, which would otherwise take "low-stock" for a product id.
@router.get("/low-stock", dependencies=[Viewer],
            response_model=list[LowStockOut], responses=PROBLEM_RESPONSES)
async def list_low_stock(engine: EngineDep,
                         warehouse: str | None = Query(None, pattern=_ID,
                                                       description="only this warehouse"),
                         limit: int = Query(500, ge=1, le=5000)):
    """Levels whose available units are below their low-stock threshold, as last acknowledged."""
    async with engine.connect() as conn:
        rows = await get_low_stock(conn, warehouse, limit)
    return [LowStockOut(product_id=r["sku"], warehouse=r["warehouse"],
                        available=r["on_hand"] - r["reserved"],
                        low_stock_threshold=r["low_stock_threshold"], updated_at=r["updated_at"])
            for r in rows]


@router.get("/{product_id}", dependencies=[Viewer],
            response_model=InventoryOut, responses=PROBLEM_RESPONSES)
async def get_inventory(
        engine: EngineDep, cache: CacheDep, product_id: str = ProductId,
        as_of: IsoDateTime | None = Query(
            None, description="the levels at this moment, rebuilt from the ledger (ISO 8601, with a "
                              "timezone), e.g. `2030-03-01T09:00:00Z`; absent: now",
            examples=["2030-03-01T09:00:00Z"])):
    """Levels per warehouse and totals; for a product with variants, each variant's too, and
    their sum; for a bundle (no stock of its own), its components' available units and how many
    bundles they make, computed at this read (from units on hand only). Each level also shows
    the units announced as incoming, those of them pre-ordered and when they are expected; the
    totals sum them where there are any. Reflects every acknowledged change, also when served
    from the read cache (header `Cache-Status`, RFC 9211: `inventory; hit` or `inventory; fwd=miss`).

    With `as_of` (e.g. `GET /inventory/SKU-TSHIRT-RED-M?as_of=2030-03-01T09:00:00Z`): the same
    answer as it was at that moment, rebuilt from the ledger: each warehouse's level after its
    last change at or before then (refused requests changed nothing), `version` the SKU's
    sequence number then, the variants that existed then with their levels then, a bundle's
    components' availability then, the units in transit then. Never cached (`Cache-Status:
    inventory; fwd=bypass`). A moment in the future gives the current levels. 404 when the
    product did not exist yet at that moment. Levels changed before the ledger kept thresholds
    and incoming units (migration 0011) show 0 for those."""
    if as_of is not None:
        body = await _read_inventory_as_of(engine, product_id, as_of)
        if body is None:
            raise Problem(404, "Unknown product", f"no product {product_id} at {as_of.isoformat()}")
        return JSONResponse(body, headers={"Cache-Status": "inventory; fwd=bypass"})
    answer = await cache.get(product_id, functools.partial(_read_inventory, engine, product_id))
    if answer is None:
        raise Problem(404, "Unknown product", f"no product {product_id}")
    body, cache_status = answer
    return JSONResponse(body, headers={"Cache-Status": cache_status})


async def _read_inventory(engine: AsyncEngine, product_id: str) -> tuple[dict[str, Any], set[str]] | None:
    """The answer from PostgreSQL, as JSON, and the SKUs it depends on (for the cache); None for
    an unknown product."""
    async with engine.connect() as conn:
        if (product := await get_product(conn, product_id)) is None:
            return None
        components = product["components"]
        available = await get_available(conn, list(components)) if components else {}
        rows = await get_levels(conn, product_id)
        variants = await get_variants(conn, product_id)
        in_transit = await get_in_transit(conn, product_id)
    answer = _answer(product_id, rows, variants, components, available, in_transit)
    return answer, {product_id, *components, *(v["sku"] for v, _ in variants)}


async def _read_inventory_as_of(engine: AsyncEngine, product_id: str,
                                as_of: datetime) -> dict[str, Any] | None:
    """The answer as of ``as_of``, from the ledger (one query for the levels of the product, its
    variants and a bundle's components); None when the product did not exist then."""
    async with engine.connect() as conn:
        product = await get_product(conn, product_id)
        if product is None or product["created_at"] > as_of:
            return None
        components = product["components"]
        variants = await get_variants_as_of(conn, product_id, as_of)
        skus = [product_id, *(v["sku"] for v in variants), *components]
        levels = await get_levels_as_of(conn, list(dict.fromkeys(skus)), as_of)
        in_transit = await get_in_transit_as_of(conn, product_id, as_of)
    available = {sku: sum(r["on_hand"] - r["reserved"] for r in levels[sku]) for sku in components}
    return _answer(product_id, levels[product_id], [(v, levels[v["sku"]]) for v in variants],
                   components, available, in_transit)


def _answer(product_id: str, rows: list[dict], variants: list[tuple[dict, list[dict]]],
            components: dict[str, int], available: dict[str, int], in_transit: int) -> dict[str, Any]:
    """The answer, as JSON, from the product's level rows (``inventory_levels``'s keys), its
    variants' and its components' available units."""
    levels, totals = _levels(rows)
    out = [_variant(variant, variant_rows) for variant, variant_rows in variants]
    answer = InventoryOut(product_id=product_id, warehouses=levels, totals=totals,
                          version=max((r["version"] for r in rows), default=0), variants=out,
                          variant_totals=_sum([v.totals for v in out]) if out else None,
                          in_transit=in_transit,
                          bundle=_bundle(components, available) if components else None)
    return answer.model_dump(mode="json")


def _variant(variant: dict, rows: list[dict]) -> VariantLevelsOut:
    levels, totals = _levels(rows)
    return VariantLevelsOut(product_id=variant["sku"], attributes=variant["attributes"],
                            warehouses=levels, totals=totals)


def _bundle(components: dict[str, int], available: dict[str, int]) -> BundleAvailabilityOut:
    """A bundle's availability: the least, over its components, of floor(available / quantity)."""
    parts = [ComponentAvailabilityOut(product_id=sku, quantity=units, available=available[sku])
             for sku, units in components.items()]
    return BundleAvailabilityOut(components=parts,
                                 available=min(max(p.available, 0) // p.quantity for p in parts))


def _levels(rows: list[dict]) -> tuple[list[LevelOut], TotalsOut]:
    levels = [LevelOut(warehouse=r["warehouse"], on_hand=r["on_hand"], reserved=r["reserved"],
                       available=r["on_hand"] - r["reserved"], low_stock_threshold=r["low_stock_threshold"],
                       incoming=r["incoming"], preordered=r["preordered"],
                       preorderable=r["incoming"] - r["preordered"], expected_at=r["expected_at"])
              for r in rows]
    return levels, TotalsOut.of(sum(lv.on_hand for lv in levels), sum(lv.reserved for lv in levels),
                                sum(lv.incoming for lv in levels), sum(lv.preordered for lv in levels))


def _sum(totals: list[TotalsOut]) -> TotalsOut:
    # Absent incoming counts are 0.
    return TotalsOut.of(sum(t.total for t in totals), sum(t.reserved for t in totals),
                        sum(t.incoming or 0 for t in totals), sum(t.preordered or 0 for t in totals))


@router.post("/{product_id}/update", dependencies=[Operator], response_model=LevelOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def update_inventory(update: StockUpdateIn, gateway: GatewayDep, engine: EngineDep,
                           settings: SettingsDep, command_id: CommandIdDep,
                           product_id: str = ProductId):
    """Receive (positive) or remove (negative) stock in one warehouse, with a reason.

    A receipt first holds space in the warehouse's capacity ledger: 409 (`CAPACITY_EXCEEDED`)
    when the warehouse has not that much room left across all its SKUs, 404 for an unknown
    warehouse. 409 when removing more than is available (reserved units cannot be removed).

    A receipt's units go to the warehouse's pre-orders first, oldest first: their holds become
    ordinary reserved units by the events that follow the receipt's in the same decision, so the
    level answered (the receipt's) does not count them reserved yet; `GET /inventory/{product_id}` does."""
    if update.quantity_change == 0:
        raise Problem(422, "Invalid quantity", "quantity_change must not be 0")
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
    warehouse = update.warehouse or settings.default_warehouse
    if update.quantity_change > 0:
        receipt = ReceiveStock(product_id, update.quantity_change, update.reason)
        answer = await gateway.execute_warehouse(command_id, warehouse, receipt)
    else:
        body = AdjustStock(warehouse, update.quantity_change, update.reason)
        answer = await gateway.execute(command_id, product_id, body)
    event = decided(answer, command_id)
    return level_of(event) if isinstance(event, dict) else event


@router.post("/{product_id}/incoming", dependencies=[Operator],
             status_code=status.HTTP_201_CREATED, response_model=LevelOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def announce_incoming(request: IncomingIn, gateway: GatewayDep, engine: EngineDep,
                            settings: SettingsDep, command_id: CommandIdDep,
                            product_id: str = ProductId):
    """Announce units expected to arrive at a warehouse by `expected_at`: orders and
    reservations that allow pre-orders may hold them until they do, and the receipts that bring
    them (`POST /inventory/{product_id}/update`) turn those holds into ordinary ones, oldest
    first. 201 with the warehouse's level after.

    A negative `quantity` withdraws announced units: 409 (`INSUFFICIENT_STOCK`) for more than
    those no pre-order holds (`preorderable`). 404 for an unknown product or warehouse; 422 for a
    bundle (its units are its components'), a quantity of 0, or units announced without a date."""
    if request.quantity == 0:
        raise Problem(422, "Invalid quantity", "quantity must not be 0")
    if request.quantity > 0 and request.expected_at is None:
        raise Problem(422, "Invalid request", "incoming units need expected_at")
    warehouse = request.warehouse_id or settings.default_warehouse
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
        # Stock commands do not pass the warehouse's ledger, so nobody else would notice.
        if not await get_warehouses(conn, warehouse):
            raise Problem(404, "Unknown warehouse", f"no warehouse {warehouse}", reason="UNKNOWN_WAREHOUSE")
    body = AnnounceIncoming(warehouse, request.quantity, request.expected_ms())
    event = decided(await gateway.execute(command_id, product_id, body), command_id)
    return level_of(event) if isinstance(event, dict) else event


@router.post("/{product_id}/low-stock-threshold", dependencies=[Operator], response_model=LevelOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def set_low_stock_threshold(request: LowStockThresholdIn, gateway: GatewayDep, engine: EngineDep,
                                  settings: SettingsDep, command_id: CommandIdDep,
                                  product_id: str = ProductId):
    """Set the threshold under which the product's available units in a warehouse raise a
    LowStock alert (when they cross it, or when the new threshold is above them already)."""
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
    body = SetLowStockThreshold(request.warehouse or settings.default_warehouse, request.threshold)
    event = decided(await gateway.execute(command_id, product_id, body), command_id)
    return level_of(event) if isinstance(event, dict) else event
