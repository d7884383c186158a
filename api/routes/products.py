from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CommandIdDep, EngineDep, GatewayDep
from api.models import (
    BundleIn, BundleOut, ComponentOut, PendingOut, ProductIn, ProductOut, VariantIn, VariantOut,
)
from api.outcomes import decided
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Admin
from storage.queries import get_product, get_products
from streams.stock.records import CreateProduct

router = APIRouter(prefix="/products", tags=["products"])


@router.post("", dependencies=[Admin], status_code=status.HTTP_201_CREATED, response_model=ProductOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_product(product: ProductIn, gateway: GatewayDep, command_id: CommandIdDep):
    """Create a product; its SKU is its id, `unit_cost` optional. 409 if the SKU exists."""
    body = CreateProduct(product.name, product.description, product.category, unit_cost=product.unit_cost)
    event = decided(await gateway.execute(command_id, product.sku, body), command_id)
    if not isinstance(event, dict):
        return event
    created = event["body"]
    return ProductOut(product_id=event["sku"], sku=event["sku"], name=created["name"],
                      description=created["description"], category=created["category"],
                      unit_cost=created.get("unit_cost"))


@router.post("/variants", dependencies=[Admin],
             status_code=status.HTTP_201_CREATED, response_model=VariantOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_variant(variant: VariantIn, gateway: GatewayDep, engine: EngineDep,
                         command_id: CommandIdDep):
    """Create a variant: a SKU of its own (stock is kept per variant) that belongs to a product,
    with the attributes that set it apart. 404 if the product does not exist; 422 if it is a
    variant itself; 409 if the SKU exists. Its `unit_cost` is its own (not its product's)."""
    async with engine.connect() as conn:
        parent = await get_product(conn, variant.parent_id)
    if parent is None:
        raise Problem(404, "Unknown product", f"no product {variant.parent_id}")
    if parent.get("parent_sku"):
        raise Problem(422, "Invalid variant", f"{variant.parent_id} is a variant itself; name its product")
    body = CreateProduct(variant.name, variant.description, variant.category or parent["category"],
                         variant.parent_id, variant.attributes, unit_cost=variant.unit_cost)
    event = decided(await gateway.execute(command_id, variant.sku, body), command_id)
    if not isinstance(event, dict):
        return event
    created = event["body"]
    return VariantOut(product_id=event["sku"], sku=event["sku"], parent_id=created["parent"],
                      name=created["name"], attributes=created["attributes"],
                      unit_cost=created.get("unit_cost"))


@router.post("/bundles", dependencies=[Admin],
             status_code=status.HTTP_201_CREATED, response_model=BundleOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_bundle(bundle: BundleIn, gateway: GatewayDep, engine: EngineDep, command_id: CommandIdDep):
    """Create a bundle: a product made of other products' units (each component: a product and
    the units of it in one bundle). It holds no stock of its own: `GET /inventory/{id}` shows how
    many bundles its components make, and an order for it reserves its components, every one or
    none. 404 if a component is not a product; 422 if a component is a bundle itself; 409 if the
    SKU exists."""
    wanted = [c.product_id for c in bundle.components]
    async with engine.connect() as conn:
        found = await get_products(conn, wanted)
    if unknown := [sku for sku in wanted if sku not in found]:
        raise Problem(404, "Unknown product", f"no product {', '.join(unknown)}")
    if nested := [sku for sku in wanted if found[sku]["components"]]:
        raise Problem(422, "Invalid bundle", f"{', '.join(nested)} is a bundle itself; name its components")
    body = CreateProduct(bundle.name, bundle.description, bundle.category,
                         components={c.product_id: c.quantity for c in bundle.components})
    event = decided(await gateway.execute(command_id, bundle.sku, body), command_id)
    if not isinstance(event, dict):
        return event
    created = event["body"]
    return BundleOut(product_id=event["sku"], sku=event["sku"], name=created["name"],
                     description=created["description"], category=created["category"],
                     components=[ComponentOut(product_id=sku, quantity=units)
                                 for sku, units in created["components"].items()])
