"""Dependencies of the routes, as ``Annotated`` aliases.

They are ``async def`` although none of them awaits: FastAPI runs a plain ``def`` dependency in
a worker thread, and four thread hops per request were a tenth of the API's time under load
(bench/README.md).
"""
from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events import EventHub
from api.gateway import CommandGateway
from api.security import Credentials, Principal
from common.settings import Settings

__all__ = ["SettingsDep", "GatewayDep", "EngineDep", "HubDep", "RedisDep", "CommandIdDep",
           "CredentialsDep", "PrincipalDep"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _gateway(request: Request) -> CommandGateway:
    """The gateway, sending as the request's principal (the commands' sender, the history's actor).
    Every route that sends commands declares its role, so the principal is known by now."""
    return request.app.state.gateway.acting_as(request.state.principal.actor)


async def _principal(request: Request) -> Principal:
    """The principal a route's role dependency (api/security) authenticated."""
    return request.state.principal


async def _credentials(request: Request) -> Credentials:
    return request.app.state.credentials


async def _engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


async def _hub(request: Request) -> EventHub:
    return request.app.state.hub


async def _redis(request: Request) -> Redis:
    return request.app.state.redis


async def _command_id(
    idempotency_key: Annotated[str | None, Header(
        max_length=128, pattern=r"^[\x21-\x7e]+$",
        description="Makes the request safe to retry: the same key is applied once and "
                    "answers with the original outcome.")] = None,
) -> str:
    return idempotency_key or str(uuid.uuid4())


SettingsDep = Annotated[Settings, Depends(_settings)]
GatewayDep = Annotated[CommandGateway, Depends(_gateway)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
HubDep = Annotated[EventHub, Depends(_hub)]
RedisDep = Annotated[Redis, Depends(_redis)]
CommandIdDep = Annotated[str, Depends(_command_id)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
CredentialsDep = Annotated[Credentials, Depends(_credentials)]


# The read cache of GET /inventory/{product_id} (api/cache.py), appended as a block of its own.
from api.cache import InventoryCache  # noqa: E402

__all__ += ["CacheDep"]


async def _cache(request: Request) -> InventoryCache:
    return request.app.state.cache


CacheDep = Annotated[InventoryCache, Depends(_cache)]
