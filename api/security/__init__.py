"""Who may do what: bearer tokens and API keys, roles, and rate limits per client.

Routes declare their role with one of the ``Viewer`` / ``Operator`` / ``Admin`` dependencies.
FastAPI writes it into the OpenAPI document as the operation's security requirement (the role is
the requirement's scope, as OpenAPI 3.1 allows for non-OAuth schemes), which is what the auth
matrix test (tests/integration/test_auth.py) reads to try every operation with every role.

A request is, in order: authenticated (401 without valid credentials), rate limited (429 with
Retry-After), then authorized (403 for a too-weak role). The principal is kept on
``request.state.principal``, so the commands it sends name it as their sender (the audit history's
actor).
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security, WebSocket
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from api.problems import Problem
from api.security.credentials import Credentials
from api.security.ratelimit import RateLimiter
from api.security.roles import Principal, Role
from api.security.tokens import InvalidTokenError, issue_token, read_token

__all__ = ["Role", "Principal", "Credentials", "RateLimiter", "issue_token", "authorize",
           "principal_of", "websocket_principal", "enforce_rate_limit", "Viewer", "Operator",
           "Admin", "BEARER", "API_KEY_HEADER"]

API_KEY_HEADER = "X-API-Key"
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT",
                    description="A token from `POST /auth/token`.")
_API_KEY = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="apiKey",
                        description="A service API key from `POST /auth/keys`.")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="inventory"'}


async def _resolve(request: Request | WebSocket, token: str | None, key: str | None) -> Principal | None:
    """The principal of the credentials presented; None for none; 401 for bad ones."""
    state = request.app.state
    if token:
        try:
            return read_token(state.settings, token)
        except InvalidTokenError as exc:
            raise Problem(401, "Invalid token", str(exc), "invalid-token", headers=_CHALLENGE) from exc
    if key:
        principal = await state.credentials.authenticate_key(key)
        if principal is None:
            raise Problem(401, "Invalid API key", "the API key is unknown or revoked", "invalid-api-key",
                          headers=_CHALLENGE)
        return principal
    return None


async def principal_of(request: Request) -> Principal | None:
    """The request's principal from its headers alone (for middleware, outside the routes)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return await _resolve(request, token if scheme.lower() == "bearer" else None,
                          request.headers.get(API_KEY_HEADER))


async def enforce_rate_limit(request: Request, notation: str, *identity: str) -> None:
    verdict = await request.app.state.limiter.hit(notation, *identity)
    if not verdict.allowed:
        raise Problem(429, "Too many requests", f"more than {notation}", "rate-limited",
                      headers={"Retry-After": str(verdict.retry_after_s)},
                      retry_after=verdict.retry_after_s)


async def authorize(request: Request, scopes: SecurityScopes,
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
                    key: Annotated[str | None, Depends(_API_KEY)]) -> Principal:
    principal = await _resolve(request, bearer.credentials if bearer else None, key)
    if principal is None:
        raise Problem(401, "Not authenticated", "send a bearer token (POST /auth/token) or an "
                      f"{API_KEY_HEADER} header", "not-authenticated", headers=_CHALLENGE)
    await enforce_rate_limit(request, principal.rate_limit or request.app.state.settings.rate_limit,
                             "client", principal.actor)
    required = max((Role(s) for s in scopes.scopes), key=lambda r: r.rank, default=Role.VIEWER)
    if not principal.role.allows(required):
        raise Problem(403, "Forbidden", f"needs the {required} role, {principal.actor} is "
                      f"{principal.role}", "forbidden", required_role=required.value)
    request.state.principal = principal
    return principal


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """A WebSocket's principal: browsers cannot set headers on one, so the token may come as the
    ``access_token`` query parameter; None when absent or invalid."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    token = token if scheme.lower() == "bearer" else websocket.query_params.get("access_token")
    try:
        return await _resolve(websocket, token, websocket.headers.get(API_KEY_HEADER))
    except Problem:
        return None


# Route markers: `dependencies=[Operator]` (api/deps.py PrincipalDep reads the principal then).
Viewer = Security(authorize, scopes=[Role.VIEWER.value])
Operator = Security(authorize, scopes=[Role.OPERATOR.value])
Admin = Security(authorize, scopes=[Role.ADMIN.value])
