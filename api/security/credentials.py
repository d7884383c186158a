"""Users and service API keys, kept in PostgreSQL (tables ``api_users`` and ``api_keys``).

Passwords are hashed with argon2id (argon2-cffi). Hashing costs tens of milliseconds of CPU on
purpose, so it runs in a thread, off the event loop. An API key is ``ik_<key id>_<secret>``; its
secret is 32 random bytes, kept as a SHA-256 digest (nothing to guess, so no slow hash needed),
and a looked-up key is trusted for ``api_key_cache_s`` (a revocation takes effect within that).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api.security.roles import Principal, Role
from storage.models import api_keys, api_users

__all__ = ["Credentials", "KEY_PREFIX"]

log = logging.getLogger(__name__)
KEY_PREFIX = "ik_"
_hasher = PasswordHasher()
# Verified when the user does not exist, so an unknown name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Credentials:
    def __init__(self, engine: AsyncEngine, key_cache_s: float = 5.0) -> None:
        self.engine = engine
        self.key_cache_s = key_cache_s
        self._keys: dict[str, tuple[float, Principal | None, str]] = {}

    # ------------------------------------------------------------------ users
    async def set_user(self, username: str, password: str, role: Role) -> None:
        """Create the user, or reset its password and role."""
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        row = {"username": username, "password_hash": password_hash, "role": role.value}
        stmt = insert(api_users).values(row).on_conflict_do_update(
            index_elements=["username"], set_={"password_hash": password_hash, "role": role.value,
                                               "disabled": False})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def create_user(self, username: str, password: str, role: Role) -> bool:
        """False when the name is taken."""
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        stmt = insert(api_users).values(username=username, password_hash=password_hash,
                                        role=role.value).on_conflict_do_nothing()
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def ensure_user(self, username: str, password: str, role: Role) -> None:
        """At start-up: the configured administrator exists with the configured password."""
        if await self.login(username, password) is None:
            await self.set_user(username, password, role)
            log.info("administrator set from the settings", extra={"username": username})

    async def login(self, username: str, password: str) -> Principal | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_users).where(
                api_users.c.username == username))).mappings().first()
        usable = row is not None and not row["disabled"]
        verified = await asyncio.to_thread(_verify, row["password_hash"] if usable else _DUMMY_HASH, password)
        return Principal(username, Role(row["role"]), "user") if usable and verified else None

    # ------------------------------------------------------------------ API keys
    async def create_key(self, name: str, role: Role, created_by: str,
                         rate_limit: str | None = None) -> tuple[dict[str, Any], str]:
        """The key's row and the key itself (shown once: only its digest is kept)."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = {"key_id": key_id, "name": name, "role": role.value, "secret_sha256": _digest(secret),
               "rate_limit": rate_limit, "created_by": created_by}
        async with self.engine.begin() as conn:
            stored = (await conn.execute(insert(api_keys).values(row).returning(api_keys))).mappings().one()
        return dict(stored), f"{KEY_PREFIX}{key_id}_{secret}"

    async def list_keys(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id))
            return [dict(r) for r in rows.mappings()]

    async def revoke_key(self, key_id: str) -> dict[str, Any] | None:
        """The revoked key's row (revoked once: a second revocation keeps the first time)."""
        stmt = (update(api_keys).where(api_keys.c.key_id == key_id)
                .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
                .returning(api_keys))
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        self._keys.pop(key_id, None)
        return dict(row) if row else None

    async def authenticate_key(self, presented: str) -> Principal | None:
        key_id, _, secret = presented.removeprefix(KEY_PREFIX).partition("_")
        if not presented.startswith(KEY_PREFIX) or not key_id or not secret:
            return None
        cached = self._keys.get(key_id)
        if cached is None or cached[0] < time.monotonic():
            cached = (time.monotonic() + self.key_cache_s, *await self._load_key(key_id))
            self._keys[key_id] = cached
        _, principal, digest = cached
        if principal is None or not hmac.compare_digest(digest, _digest(secret)):
            return None
        return principal

    async def _load_key(self, key_id: str) -> tuple[Principal | None, str]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(
                api_keys.c.key_id == key_id))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None, ""
        return Principal(key_id, Role(row["role"]), "key", row["rate_limit"]), row["secret_sha256"]
