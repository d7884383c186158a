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
from common.settings import Settings

__all__ = ["SettingsDep", "GatewayDep", "EngineDep", "HubDep", "RedisDep", "CommandIdDep"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _gateway(request: Request) -> CommandGateway:
    return request.app.state.gateway


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
