"""JWT bearer tokens (PyJWT, HS256): issued by ``POST /auth/token``, checked on every request."""
from __future__ import annotations

import time
import uuid

import jwt

from api.security.roles import Principal, Role
from common.errors import InventoryError
from common.settings import Settings

__all__ = ["issue_token", "read_token", "InvalidTokenError", "ISSUER"]

ISSUER = "inventory-api"
_ALGORITHM = "HS256"


class InvalidTokenError(InventoryError):
    """A bearer token that is malformed, tampered with, expired or names no known role."""


def issue_token(settings: Settings, subject: str, role: Role, ttl_s: int | None = None,
                now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": subject, "role": role.value, "iss": ISSUER, "iat": issued,
              "exp": issued + (ttl_s if ttl_s is not None else settings.jwt_ttl_s),
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=_ALGORITHM)


def read_token(settings: Settings, token: str) -> Principal:
    """The token's principal; InvalidTokenError for anything but a valid, unexpired token."""
    try:
        claims = jwt.decode(token, settings.jwt_secret.get_secret_value(), algorithms=[_ALGORITHM],
                            issuer=ISSUER, options={"require": ["sub", "role", "exp", "iat", "iss"]})
        return Principal(name=str(claims["sub"]), role=Role(claims["role"]), kind="user")
    except jwt.ExpiredSignatureError as exc:
        raise InvalidTokenError("the token has expired") from exc
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise InvalidTokenError(f"the token is not valid: {exc}") from exc
