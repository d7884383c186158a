"""Authentication and roles, tried the wrong way: the matrix is built from the OpenAPI document,
so an operation added later is covered without editing this file."""
from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import httpx
import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from sqlalchemy import text

from api.security import Role, issue_token
from api.security.tokens import ISSUER

from .conftest import assert_invariants, auth_headers, create_stocked_product

ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
# What anyone may call: a token is got from one, load balancers probe the other.
PUBLIC = {("post", "/auth/token"), ("get", "/health")}
PROBLEM = "application/problem+json"


def _sample(schema: dict) -> str:
    """A path parameter value its pattern accepts (the example when there is one)."""
    if schema.get("examples"):
        return str(schema["examples"][0])
    return "0123456789abcdef" if schema.get("pattern") == "^[0-9a-f]{16}$" else "probe-1"


def _operations(doc: dict) -> list[tuple[str, str, str, Role | None]]:
    """(method, path template, concrete path, required role or None for public) of each operation."""
    found = []
    for template, operations in doc["paths"].items():
        for method, op in operations.items():
            params = {p["name"]: _sample(p.get("schema", {})) for p in op.get("parameters", [])
                      if p["in"] == "path"}
            path = re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], template)
            scopes = [s for requirement in op.get("security", []) for s in requirement.values()]
            role = max((Role(s) for ss in scopes for s in ss), key=lambda r: r.rank) if scopes else None
            found.append((method, template, path, role))
    return found


@pytest.fixture
async def operations(client) -> list[tuple[str, str, str, Role | None]]:
    doc = (await client.get("/openapi.json")).json()
    return _operations(doc)


@pytest.fixture
async def api_keys(client) -> dict[Role, str]:
    """An API key per role, made by the administrator."""
    keys = {}
    for role in ROLES:
        response = await client.post("/auth/keys", json={"name": f"matrix-{role}", "role": role.value})
        assert response.status_code == 201, response.text
        keys[role] = response.json()["api_key"]
    return keys


async def _call(api, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as anonymous:
        body = {"json": {}} if method in ("post", "put", "patch") else {}
        return await anonymous.request(method.upper(), path, headers=headers, **body)


async def test_only_the_token_endpoint_and_health_are_public_and_every_write_needs_a_role(operations):
    assert {(m, t) for m, t, _, role in operations if role is None} == PUBLIC
    writes = [(m, t, role) for m, t, _, role in operations if m != "get" and (m, t) not in PUBLIC]
    assert writes and all(role in (Role.OPERATOR, Role.ADMIN) for _, _, role in writes), writes
    # Every read is a viewer's, but the list of API keys (an administrator's).
    reads = {t: role for m, t, _, role in operations if m == "get" and role}
    assert reads.pop("/auth/keys") == Role.ADMIN and set(reads.values()) == {Role.VIEWER}, reads


async def test_every_operation_without_credentials_is_401_problem(api, operations):
    for method, template, path, role in operations:
        if role is None:
            continue
        response = await _call(api, method, path, {})
        assert response.status_code == 401, (method, template, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("kind", ["token", "api key"])
async def test_every_operation_refuses_weaker_roles_and_admits_sufficient_ones(api, settings, engine,
                                                                               operations, api_keys, kind):
    def credentials(role: Role) -> dict[str, str]:
        return auth_headers(settings, role.value) if kind == "token" else {"X-API-Key": api_keys[role]}

    checked = 0
    for method, template, path, required in operations:
        if required is None:
            continue
        for role in ROLES:
            response = await _call(api, method, path, credentials(role))
            if role.allows(required):
                assert response.status_code not in (401, 403), (kind, role, method, template, response.text)
            else:
                assert response.status_code == 403, (kind, role, method, template, response.text)
                assert response.json()["required_role"] == required.value
            checked += 1
    assert checked >= 3 * 25
    # Every operation was probed with every role: the warehouses' ledgers and levels still hold.
    await assert_invariants(settings, engine, [])


def _tampered(token: str, **claims) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_expired_tampered_foreign_and_unsigned_tokens_are_401(api, settings, client):
    now = time.time()
    good = issue_token(settings, "mallory", Role.VIEWER)
    bad = {
        "expired": issue_token(settings, "mallory", Role.ADMIN, ttl_s=60, now=now - 3600),
        "tampered role": _tampered(good, role="admin"),
        "tampered expiry": _tampered(good, exp=int(now) + 10**6),
        "foreign secret": jwt.encode({"sub": "mallory", "role": "admin", "iss": ISSUER, "iat": int(now),
                                      "exp": int(now) + 60}, "another-secret-of-at-least-32-chars!!",
                                     algorithm="HS256"),
        "unsigned": jwt.encode({"sub": "mallory", "role": "admin", "iss": ISSUER, "iat": int(now),
                                "exp": int(now) + 60}, None, algorithm="none"),
        "unknown role": jwt.encode({"sub": "m", "role": "root", "iss": ISSUER, "iat": int(now),
                                    "exp": int(now) + 60}, settings.jwt_secret.get_secret_value(),
                                   algorithm="HS256"),
        "garbage": "not-a-jwt",
    }
    for name, token in bad.items():
        response = await _call(api, "get", "/warehouses", {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"].startswith(PROBLEM), name
    assert (await _call(api, "get", "/warehouses", {"Authorization": f"Bearer {good}"})).status_code == 200
    bad_key = await _call(api, "get", "/warehouses", {"X-API-Key": "ik_0123456789abcdef_wrong"})
    assert bad_key.status_code == 401, bad_key.text


async def test_users_log_in_with_passwords_and_act_with_their_role(api, client, settings, engine):
    user = {"username": f"viewer-{time.monotonic_ns()}", "password": "a long enough password", "role": "viewer"}
    assert (await client.post("/auth/users", json=user)).status_code == 201
    assert (await client.post("/auth/users", json=user)).status_code == 409
    wrong = await _call(api, "post", "/auth/token", {})
    assert wrong.status_code == 422  # no body
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as anonymous:
        refused = await anonymous.post("/auth/token", json={"username": user["username"], "password": "nope"})
        assert refused.status_code == 401 and refused.headers["content-type"].startswith(PROBLEM)
        unknown = await anonymous.post("/auth/token", json={"username": "nobody", "password": "nope"})
        assert unknown.status_code == 401
        issued = await anonymous.post("/auth/token", json={"username": user["username"],
                                                           "password": user["password"]})
        assert issued.status_code == 200, issued.text
        token = issued.json()
        assert token["role"] == "viewer" and token["token_type"] == "bearer"
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        sku = await create_stocked_product(client, 3)
        assert (await anonymous.get(f"/inventory/{sku}", headers=headers)).status_code == 200
        write = await anonymous.post("/reservations", headers=headers,
                                     json={"product_id": sku, "order_id": "o", "quantity": 1})
        assert write.status_code == 403, write.text
        admin = await anonymous.post("/auth/token", json={"username": settings.admin_username,
                                                          "password": settings.admin_password.get_secret_value()})
        assert admin.status_code == 200 and admin.json()["role"] == "admin"
    await assert_invariants(settings, engine, [sku])


async def test_commands_name_their_principal_as_actor_and_a_revoked_key_stops_working(api, client, settings,
                                                                                     engine):
    made = (await client.post("/auth/keys", json={"name": "erp", "role": "operator"})).json()
    key = {"X-API-Key": made["api_key"]}
    sku = await create_stocked_product(client, 4)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30, headers=key) as erp:
        reserved = await erp.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": 1})
        assert reserved.status_code == 201, reserved.text
    async with engine.connect() as conn:
        senders = dict((await conn.execute(text(
            "SELECT event_type, sender FROM inventory_transactions WHERE sku = :sku"), {"sku": sku})).all())
    assert senders["Reserved"] == f"key:{made['key_id']}", senders
    assert senders["StockAdjusted"] == "user:tests", senders  # the receipt, through the warehouse's saga
    listed = {k["key_id"]: k for k in (await client.get("/auth/keys")).json()}
    assert "api_key" not in listed[made["key_id"]] and listed[made["key_id"]]["revoked_at"] is None
    revoked = await client.delete(f"/auth/keys/{made['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    deadline = time.monotonic() + settings.api_key_cache_s + 10
    while (status := (await _call(api, "get", "/warehouses", key)).status_code) != 401:
        assert status == 200 and time.monotonic() < deadline, status
        await asyncio.sleep(0.5)
    assert (await client.delete("/auth/keys/0123456789abcdef")).status_code == 404
    await assert_invariants(settings, engine, [sku])


async def test_the_websocket_needs_credentials(api, settings):
    url = api.base_url.replace("http://", "ws://") + "/ws/inventory"
    for refused in (url, url + "?access_token=not-a-jwt"):
        with pytest.raises(InvalidStatus) as error:
            async with websockets.connect(refused):
                pass
        assert error.value.response.status_code == 403
    token = issue_token(settings, "screen", Role.VIEWER)
    async with websockets.connect(f"{url}?access_token={token}") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
    async with websockets.connect(url, additional_headers=auth_headers(settings, "viewer")) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
