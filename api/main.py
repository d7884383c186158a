"""The FastAPI app, served by ``python -m api`` (api/__main__.py)."""
from __future__ import annotations

from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from redis.asyncio import Redis

from api.cache import InventoryCache
from api.events import EventHub
from api.gateway import CommandGateway
from api.grpc.server import start_grpc, stop_grpc
from api.idempotency import IdempotencyMiddleware
from api.observability import install_observability
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routes import (analytics, auth, backorders, dashboard, forecast, health, history, inventory,
                        orders, products, reservations, warehouses, ws)
from api.security import Credentials, RateLimiter, Role
from common.logs import configure_logging
from common.settings import Settings, get_settings
from storage.db import asyncpg_dsn, create_engine
from streams.admin import ensure_topics


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    settings.check_secrets()  # outside development, refuse to start with a placeholder secret
    await ensure_topics(settings)
    state = app.state
    state.engine = create_engine(settings.database_url, pool_size=20)
    state.redis = Redis.from_url(settings.redis_url)
    state.cache = InventoryCache.from_settings(state.redis, settings)
    state.limiter = RateLimiter(settings.redis_url)
    state.credentials = Credentials(state.engine, settings.api_key_cache_s)
    await state.credentials.ensure_user(settings.admin_username,
                                        settings.admin_password.get_secret_value(), Role.ADMIN)
    state.hub = EventHub(asyncpg_dsn(settings.database_url))
    state.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                      acks="all", enable_idempotence=True, linger_ms=1)
    await state.producer.start()
    await state.hub.start()
    state.gateway = CommandGateway(state.producer, state.hub, settings.command_timeout_s)
    # gRPC beside REST (api/grpc/): its watches need the hub, so it starts after it, stops first.
    state.grpc = await start_grpc(state, settings)
    try:
        yield
    finally:
        await stop_grpc(state.grpc, settings.grpc_stop_grace_s)
        await state.hub.stop()
        await state.producer.stop()
        await state.redis.aclose()
        await state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    app = FastAPI(
        title="Real-time inventory",
        version="0.1.0",
        description="Stock that is never oversold: every SKU has one writer, in log order. "
                    "Writes produce a command to Kafka and answer with the event that decided it.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    install_openapi(app)
    for module in (auth, products, inventory, history, reservations, orders, backorders, warehouses, ws,
                   analytics, forecast, dashboard, health):
        app.include_router(module.router)
    app.add_middleware(IdempotencyMiddleware)  # Idempotency-Key replays, logged by observability
    install_observability(app)  # request ids, access log, GET /metrics
    return app


app = create_app()
