"""Tokens for users, and the administration of users and service API keys."""
from __future__ import annotations

from fastapi import APIRouter, Path, Request, status

from api.deps import CredentialsDep, PrincipalDep, SettingsDep
from api.models import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, TokenIn, TokenOut, UserIn, UserOut
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Admin, Role, enforce_rate_limit, issue_token

router = APIRouter(prefix="/auth", tags=["auth"])
KeyId = Path(pattern=r"^[0-9a-f]{16}$", examples=["3f9c2a7b1d4e5f60"])


@router.post("/token", response_model=TokenOut, responses=PROBLEM_RESPONSES)
async def token(login: TokenIn, request: Request, credentials: CredentialsDep, settings: SettingsDep):
    """A bearer token for a user (send it as `Authorization: Bearer <token>`), valid for
    `expires_in` seconds. 401 for a wrong name or password; attempts are rate limited per client
    address (429 with Retry-After)."""
    address = request.client.host if request.client else "unknown"
    await enforce_rate_limit(request, settings.login_rate_limit, "login", address)
    principal = await credentials.login(login.username, login.password)
    if principal is None:
        raise Problem(401, "Invalid credentials", "wrong username or password", "invalid-credentials",
                      headers={"WWW-Authenticate": 'Bearer realm="inventory"'})
    return TokenOut(access_token=issue_token(settings, principal.name, principal.role),
                    expires_in=settings.jwt_ttl_s, role=principal.role.value)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=PROBLEM_RESPONSES, dependencies=[Admin])
async def create_user(user: UserIn, credentials: CredentialsDep):
    """Create a user who logs in with `POST /auth/token`. 409 when the name is taken."""
    if not await credentials.create_user(user.username, user.password, Role(user.role)):
        raise Problem(409, "User exists", f"user {user.username} exists")
    return UserOut(username=user.username, role=user.role)


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreatedOut,
             responses=PROBLEM_RESPONSES, dependencies=[Admin])
async def create_key(key: ApiKeyIn, credentials: CredentialsDep, principal: PrincipalDep):
    """A service API key for an upstream system (send it as `X-API-Key`), with a role and,
    optionally, its own rate limit. The key is in this answer only: only its digest is kept."""
    row, secret = await credentials.create_key(key.name, Role(key.role), principal.actor, key.rate_limit)
    return ApiKeyCreatedOut(**row, api_key=secret)


@router.get("/keys", response_model=list[ApiKeyOut], responses=PROBLEM_RESPONSES, dependencies=[Admin])
async def list_keys(credentials: CredentialsDep):
    """Every API key, revoked ones included (never their secrets)."""
    return [ApiKeyOut(**row) for row in await credentials.list_keys()]


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, responses=PROBLEM_RESPONSES,
               dependencies=[Admin])
async def revoke_key(credentials: CredentialsDep, key_id: str = KeyId):
    """Revoke a key: refused (401) within `api_key_cache_s` on every API process."""
    row = await credentials.revoke_key(key_id)
    if row is None:
        raise Problem(404, "Unknown API key", f"no API key {key_id}")
    return ApiKeyOut(**row)
