"""SQL injection in every string field: stored or refused, always as plain data.

The fields come from /openapi.json: every string of every request body (through $refs, nested
objects, arrays and maps) and every string path and query parameter, so a field added later is
covered without editing this file. Each gets classic payloads in an otherwise valid request.
Never a 5xx, never pg_sleep's time; a refusal is problem+json naming the field; an acceptance is
read back exactly as sent (the API's read, or PostgreSQL where the API has none); every table
still exists afterwards.
"""
from __future__ import annotations

import asyncio
import copy
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text

from schemas import command_codec
from storage.models import inventory_transactions, metadata, products
from storage.sink import NUL_REPLACEMENT
from streams.stock.records import Command, CreateProduct, command_to_avro
from streams.topics import STOCK_COMMANDS

from .conftest import assert_invariants, create_stocked_product, new_sku

PAYLOADS = [
    "' OR '1'='1",
    "'; DROP TABLE products; --",
    '" OR ""="',
    "1; SELECT pg_sleep(30)--",
    "Robert'); DROP TABLE inventory_levels;--",
    "x' AND (SELECT pg_sleep(30)) IS NULL--",
    "1' UNION SELECT NULL, version()--",
    "$$; DROP TABLE orders; $$",
    "\\'; TRUNCATE api_users; --",
]
PROBLEM = "application/problem+json"
# A request that ran pg_sleep(30) takes longer; a plain one takes far less, even on a loaded
# two-core machine (in CI an order placed beside 7 others once took 4.4 s).
SLOW_S = 20.0
CONCURRENCY = 8


# ------------------------------------------------------------------------------ the fields
@dataclass(frozen=True)
class Target:
    """One string field of one operation: where (body, path or query) and its path in there
    (``"*"``: a map's value, ``0``: an array's item)."""

    method: str
    template: str
    where: str
    path: tuple[str | int, ...]

    @property
    def name(self) -> str:
        return next(str(p) for p in reversed(self.path) if p != "*" and not isinstance(p, int))

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template} {self.where}:{'.'.join(map(str, self.path))}"


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _strings(doc: dict, schema: dict, path: tuple, seen: frozenset = frozenset()) -> set[tuple]:
    """The paths of every string in ``schema``."""
    ref = schema.get("$ref")
    if ref in seen:
        return set()
    schema = _resolve(doc, schema)
    seen = seen | {ref} if ref else seen
    found: set[tuple] = set()
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found |= _strings(doc, alternative, path, seen)
    kind = schema.get("type")
    if kind == "string":
        found.add(path)
    elif kind == "array" and isinstance(schema.get("items"), dict):
        found |= _strings(doc, schema["items"], path + (0,), seen)
    elif kind == "object" or "properties" in schema:
        for name, prop in schema.get("properties", {}).items():
            found |= _strings(doc, prop, path + (name,), seen)
        if isinstance(schema.get("additionalProperties"), dict):
            found |= _strings(doc, schema["additionalProperties"], path + ("*",), seen)
    return found


def targets(doc: dict) -> list[Target]:
    found = []
    for template, operations in doc["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                if param["in"] in ("path", "query") and _strings(doc, param.get("schema", {}), ()):
                    found.append(Target(method, template, param["in"], (param["name"],)))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                found += [Target(method, template, "body", p) for p in sorted(_strings(doc, body, ()), key=str)]
    return found


# ------------------------------------------------------------------------------ valid requests
@dataclass
class Request:
    params: dict[str, str]
    query: dict[str, Any]
    body: dict[str, Any] | None
    #: per field name, how its accepted value is read back (None: from the answer's echo)
    read_back: dict[str, Callable[[httpx.Response, "Request"], Awaitable[Any]]]
    key: str = ""


class Scene:
    """What valid requests need: products with stock, a second warehouse, an order ... and how
    each operation's valid request is built (a fresh SKU, order or key each time)."""

    def __init__(self, client: httpx.AsyncClient, engine, doc: dict) -> None:
        self.client, self.engine, self.doc = client, engine, doc
        self.skus: list[str] = []

    async def setup(self) -> None:
        self.parent = await self.stocked(0)
        self.stock = await self.stocked(1_000_000)  # reservations, removals, orders
        self.moved = await self.stocked(1_000_000)  # transfers only
        self.destination = f"inj-{uuid.uuid4().hex[:8]}"
        response = await self.client.post("/warehouses", json={
            "warehouse_id": self.destination, "name": "injection target", "capacity": 10**9})
        assert response.status_code == 201, response.text

    async def stocked(self, units: int) -> str:
        sku = await create_stocked_product(self.client, units)
        self.skus.append(sku)
        return sku

    def fresh(self, prefix: str = "inj") -> str:
        sku = new_sku(prefix)
        self.skus.append(sku)
        return sku

    # ---- read-backs
    async def product_column(self, sku: str, column: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(products.c[column]).where(products.c.sku == sku))).scalar_one()

    async def reasons(self, sku: str, command_id: str | None = None) -> list[str | None]:
        """The reasons the ledger keeps for ``sku`` (of one command's events if given), through
        the audit history when the API has one, else from PostgreSQL."""
        path = "/inventory/{product_id}/history"
        if path in self.doc["paths"]:
            response = await self.client.get(path.format(product_id=sku), params={"limit": 500})
            assert response.status_code == 200, response.text
            return [e["reason"] for e in response.json()["entries"]
                    if command_id is None or e["command_id"] == command_id]
        query = select(inventory_transactions.c.reason).where(inventory_transactions.c.sku == sku)
        if command_id is not None:
            query = query.where(inventory_transactions.c.command_id == command_id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    # ---- one valid request per operation
    def build(self, method: str, template: str) -> Request:
        builder = getattr(self, "_" + re.sub(r"\W+", "_", f"{method} {template}").strip("_"), None)
        return builder() if builder else self._from_examples(method, template)

    def _from_examples(self, method: str, template: str) -> Request:
        """An operation this file does not know: its documented examples (answers are then only
        checked for no 5xx, time, and problem+json or an echo of what was accepted)."""
        op = self.doc["paths"][template][method]
        params = {p["name"]: str((p.get("schema", {}).get("examples") or ["probe-1"])[0])
                  for p in op.get("parameters", []) if p["in"] == "path"}
        body = None
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema:
            schema = _resolve(self.doc, schema)
            body = {name: prop["examples"][0] for name, prop in schema.get("properties", {}).items()
                    if "examples" in prop}
        return Request(params, {}, body, {})

    def _post_products(self) -> Request:
        sku = self.fresh()
        column = lambda name: lambda r, q: self.product_column(q.body["sku"], name)  # noqa: E731
        return Request({}, {}, {"sku": sku, "name": "n", "description": "d", "category": "c"},
                       {n: column(n) for n in ("name", "description", "category")})

    def _post_products_variants(self) -> Request:
        request = self._post_products()
        request.body.update(parent_id=self.parent, attributes={"colour": "red"})

        async def attribute(response, q):
            return (await self.product_column(q.body["sku"], "attributes"))["colour"]
        request.read_back["attributes"] = attribute
        return request

    def _post_products_bundles(self) -> Request:
        request = self._post_products()
        request.body["components"] = [{"product_id": self.stock, "quantity": 1}]
        return request

    def _sku_path(self, body: dict) -> Request:
        return Request({"product_id": self.stock}, {}, body, {})

    def _post_inventory_product_id_update(self) -> Request:
        request = self._sku_path({"quantity_change": -1, "reason": "r", "warehouse": "default"})

        async def reason(response, q):  # the SKU's history has it (each payload is sent once)
            reasons = await self.reasons(self.stock)
            return q.body["reason"] if q.body["reason"] in reasons else reasons
        request.read_back["reason"] = reason
        return request

    def _post_inventory_product_id_incoming(self) -> Request:
        return self._sku_path({"warehouse_id": "default", "quantity": 1, "expected_at": "2030-03-01"})

    def _post_inventory_product_id_low_stock_threshold(self) -> Request:
        return self._sku_path({"threshold": 0, "warehouse": "default"})

    def _get_inventory_product_id(self) -> Request:
        return self._sku_path(None)

    def _get_inventory_product_id_history(self) -> Request:
        return self._sku_path(None)

    def _get_inventory_low_stock(self) -> Request:
        return Request({}, {"warehouse": "default"}, None, {})

    def _post_reservations(self) -> Request:
        return Request({}, {}, {"product_id": self.stock, "order_id": f"o-{uuid.uuid4().hex}", "quantity": 1,
                                "reservation_id": f"r-{uuid.uuid4().hex}", "warehouse": "default"}, {})

    def _reservation_path(self) -> Request:
        return Request({"reservation_id": f"r-{uuid.uuid4().hex}"}, {}, None, {})

    _get_reservations_reservation_id = _reservation_path
    _post_reservations_reservation_id_release = _reservation_path
    _post_reservations_reservation_id_commit = _reservation_path

    async def order_field(self, order_id: str, name: str) -> Any:
        response = await self.client.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()[name]

    def _post_orders(self) -> Request:
        order_id = f"o-{uuid.uuid4().hex}"
        return Request({}, {}, {"order_id": order_id, "customer": "c", "lines": [
            {"product_id": self.stock, "quantity": 1}], "preferred_warehouse": "default"},
            {"customer": lambda r, q: self.order_field(q.body["order_id"], "customer")})

    def _order_path(self) -> Request:
        return Request({"order_id": f"o-{uuid.uuid4().hex}"}, {}, None, {})

    _get_orders_order_id = _order_path
    _post_orders_order_id_cancel = _order_path
    _post_orders_order_id_fulfil = _order_path

    def _post_backorders(self) -> Request:
        order_id = f"bo-{uuid.uuid4().hex}"
        return Request({}, {}, {"backorder_id": order_id, "customer": "c", "product_id": self.stock,
                                "quantity": 1, "preferred_warehouse": "default"},
                       {"customer": lambda r, q: self.order_field(q.body["backorder_id"], "customer")})

    async def warehouse_field(self, warehouse_id: str, name: str) -> Any:
        response = await self.client.get(f"/warehouses/{warehouse_id}")
        assert response.status_code == 200, response.text
        return response.json()[name]

    def _post_warehouses(self) -> Request:
        field = lambda name: lambda r, q: self.warehouse_field(q.body["warehouse_id"], name)  # noqa: E731
        return Request({}, {}, {"warehouse_id": f"w-{uuid.uuid4().hex}", "name": "n", "location": "l",
                                "capacity": 10},
                       {"name": field("name"), "location": field("location")})

    def _warehouse_path(self) -> Request:
        return Request({"warehouse_id": "default"}, {}, None, {})

    _get_warehouses_warehouse_id = _warehouse_path

    def _post_warehouses_warehouse_id_transfer(self) -> Request:
        async def reason(response, q):
            """The destination's ledger keeps it, with the space it held (the stock events of a
            transfer carry none): in the warehouse events of the transfer's command."""
            query = text("SELECT payload->>'receipt_reason' FROM warehouse_events WHERE command_id = :c")
            for _ in range(40):  # bounded, 10 s: the answer is the stock event's, the ledger's may follow
                async with self.engine.connect() as conn:
                    reasons = list((await conn.execute(query, {"c": response.json()["transfer_id"]})).scalars())
                if q.body["reason"] in reasons:
                    return q.body["reason"]
                await asyncio.sleep(0.25)
            return reasons
        return Request({"warehouse_id": "default"}, {}, {"product_id": self.moved, "quantity": 1,
                                                         "destination": self.destination, "reason": "r"},
                       {"reason": reason})

    def _post_auth_token(self) -> Request:
        return Request({}, {}, {"username": "nobody", "password": "wrong"}, {})

    def _post_auth_users(self) -> Request:
        async def password(response, q):  # kept as a hash: read back by logging in with it
            login = await self.client.post("/auth/token", json={"username": q.body["username"],
                                                                "password": q.body["password"]})
            assert login.status_code == 200, login.text
            return q.body["password"]
        return Request({}, {}, {"username": f"u{uuid.uuid4().hex[:12]}", "password": "p" * 16,
                                "role": "viewer"}, {"password": password})

    def _post_auth_keys(self) -> Request:
        async def name(response, q):
            keys = (await self.client.get("/auth/keys")).json()
            return next(k["name"] for k in keys if k["key_id"] == response.json()["key_id"])
        return Request({}, {}, {"name": "k", "role": "viewer", "rate_limit": "10/minute"}, {"name": name})

    def _delete_auth_keys_key_id(self) -> Request:
        return Request({"key_id": "0123456789abcdef"}, {}, None, {})


# ------------------------------------------------------------------------------ one injection
def _inject(request: Request, target: Target, payload: str) -> None:
    if target.where == "path":
        request.params[target.path[0]] = payload
        return
    if target.where == "query":
        request.query[target.path[0]] = payload
        return
    node: Any = request.body
    for step, following in zip(target.path, target.path[1:]):
        if step == "*":
            step = next(iter(node), "key")
        if isinstance(node, list):
            node = node[step]
        else:
            node = node.setdefault(step, [{}] if isinstance(following, int) else {})
    last = target.path[-1]
    if last == "*":
        node[next(iter(node), "key")] = payload
    else:
        node[last] = payload


def _url(template: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(params.get(m.group(1), "probe-1"), safe=""), template)


def _echoed(value: Any, payload: str) -> bool:
    if isinstance(value, str):
        return value == payload
    if isinstance(value, dict):
        return any(_echoed(k, payload) or _echoed(v, payload) for k, v in value.items())
    if isinstance(value, list):
        return any(_echoed(v, payload) for v in value)
    return False


async def _try(scene: Scene, target: Target, payload: str) -> str | None:
    """One injection; a description of what went wrong, None when all is well."""
    request = copy.deepcopy(scene.build(target.method, target.template))
    _inject(request, target, payload)
    request.key = f"inj-{uuid.uuid4().hex}"
    started = time.monotonic()
    response = await scene.client.request(
        target.method.upper(), _url(target.template, request.params), params=request.query or None,
        json=request.body, headers={"Idempotency-Key": request.key} if target.method != "get" else None)
    elapsed = time.monotonic() - started
    where = f"{target} = {payload!r}: {response.status_code}"
    if response.status_code >= 500:
        return f"{where} {response.text}"
    if elapsed >= SLOW_S:
        return f"{where} took {elapsed:.1f}s"
    if response.status_code >= 400:
        if not response.headers.get("content-type", "").startswith(PROBLEM):
            return f"{where} is not problem+json: {response.text}"
        if response.status_code in (400, 422):  # in its errors' loc, or its detail
            problem = response.json()
            locs = [list(map(str, e["loc"])) for e in problem.get("errors") or []]
            if not any(target.name in loc for loc in locs) and target.name not in problem.get("detail", ""):
                return f"{where} names no field {target.name}: {response.text}"
        return None
    if response.status_code == 202:
        return f"{where} undecided in time: {response.text}"
    read_back = request.read_back.get(target.name)
    if read_back is None:
        stored: Any = payload if _echoed(response.json(), payload) else response.json()
    else:
        stored = await read_back(response, request)
    return None if stored == payload else f"{where} read back as {stored!r}"


# ------------------------------------------------------------------------------ the test
async def test_sql_injection_in_every_string_field_is_plain_data(client, engine, settings):
    doc = (await client.get("/openapi.json")).json()
    found = targets(doc)
    # The enumeration reaches nested bodies, maps and parameters (guards the walk itself).
    names = {str(t) for t in found}
    for expected in ("POST /orders body:lines.0.product_id", "POST /products/variants body:attributes.*",
                     "GET /inventory/{product_id} path:product_id", "GET /inventory/low-stock query:warehouse",
                     "POST /products body:description", "POST /warehouses/{warehouse_id}/transfer body:reason"):
        assert expected in names, (expected, sorted(names))
    scene = Scene(client, engine, doc)
    await scene.setup()

    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded(target: Target, payload: str) -> str | None:
        async with gate:
            return await _try(scene, target, payload)

    results = await asyncio.gather(*(bounded(t, p) for t in found for p in PAYLOADS))
    problems = [r for r in results if r]
    assert not problems, f"{len(problems)} of {len(results)} injections:\n" + "\n".join(problems)

    async with engine.connect() as conn:  # every table is still there (and readable)
        for table in metadata.sorted_tables:
            await conn.execute(select(func.count()).select_from(table))
        assert (await conn.execute(text("SELECT count(*) FROM api_users"))).scalar_one() > 0
    await assert_invariants(settings, engine, scene.skus)


async def test_nul_from_another_producer_does_not_wedge_the_ledger(client, engine, settings):
    """The API refuses NUL (tests/unit/test_free_text.py), but a producer that bypasses it can send
    a product whose name, description and attributes hold one. PostgreSQL text cannot: the sink
    stores it with U+FFFD (storage/sink.py) instead of retrying that batch forever, and the
    products created after it are stored too."""
    sku = new_sku("nul")
    command = Command(uuid.uuid4().hex, sku, int(time.time() * 1000),
                      CreateProduct("a\x00b", description="\x00", attributes={"k\x00": "v\x00"}),
                      sender="test")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(STOCK_COMMANDS, command_codec().encode(command_to_avro(command)),
                                     key=sku.encode())
    finally:
        await producer.stop()
    query = select(products.c.name, products.c.description, products.c.attributes).where(products.c.sku == sku)
    for _ in range(120):  # bounded: 30 s
        async with engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is not None:
            break
        await asyncio.sleep(0.25)
    assert row is not None, "the product with NUL was never stored: is the ledger wedged?"
    after = await create_stocked_product(client, 3)  # decided and stored after it: not wedged
    mark = NUL_REPLACEMENT
    assert tuple(row) == (f"a{mark}b", mark, {f"k{mark}": f"v{mark}"})
    await assert_invariants(settings, engine, [sku, after])
