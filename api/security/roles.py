"""Roles and the principal a request acts as."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Role", "Principal"]


class Role(StrEnum):
    """Each role can do what the ones before it can: viewer < operator < admin."""

    VIEWER = "viewer"      # reads and the live stream
    OPERATOR = "operator"  # stock changes, reservations, orders, transfers
    ADMIN = "admin"        # products, warehouses, users and API keys

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: "Role") -> bool:
        return self.rank >= required.rank


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a user (bearer token) or a service (API key)."""

    name: str
    role: Role
    kind: str  # "user" or "key"
    rate_limit: str | None = None  # an API key's own limit

    @property
    def actor(self) -> str:
        """How commands and the audit history name it: ``user:alice``, ``key:k3f9…``."""
        return f"{self.kind}:{self.name}"
