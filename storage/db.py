"""Engine construction shared by the sink, the API and the migrations."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["create_engine", "asyncpg_dsn"]


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size,
                               pool_pre_ping=True)


def asyncpg_dsn(database_url: str) -> str:
    """The same address for a plain asyncpg connection (used to LISTEN)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
