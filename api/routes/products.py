from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CommandIdDep, GatewayDep
from api.models import PendingOut, ProductIn, ProductOut
from api.outcomes import decided
from api.problems import PROBLEM_RESPONSES
from streams.stock.records import CreateProduct

router = APIRouter(prefix="/products", tags=["products"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProductOut,
             responses={202: {"model": PendingOut}, **PROBLEM_RESPONSES})
async def create_product(product: ProductIn, gateway: GatewayDep, command_id: CommandIdDep):
    """Create a product; its SKU is its id. 409 if the SKU exists."""
    body = CreateProduct(product.name, product.description, product.category)
    event = decided(await gateway.execute(command_id, product.sku, body), command_id)
    if not isinstance(event, dict):
        return event
    created = event["body"]
    return ProductOut(product_id=event["sku"], sku=event["sku"], name=created["name"],
                      description=created["description"], category=created["category"])
