"""Credentials of a gRPC call, checked as the REST edge checks a request's (api/security).

A call's metadata carries ``authorization: Bearer <jwt>`` or ``x-api-key: ik_...`` (gRPC
metadata keys are lower case). The token is read by ``read_token`` and the key by the app's
``Credentials``, so a token or a key valid for REST is valid here, and a revoked key stops
working here within the same cache time. The principal's rate limit is the REST one, counted in
the same Redis window (one per call: a stream costs one hit, not one per event).

Order, as in REST: authenticate (UNAUTHENTICATED), rate limit (RESOURCE_EXHAUSTED), authorize
(PERMISSION_DENIED).
"""
from __future__ import annotations

import logging
from typing import Any

import grpc

from api.security import Principal, Role
from api.security.tokens import InvalidTokenError, read_token

__all__ = ["authenticate", "credentials_of", "Refusal"]

log = logging.getLogger(__name__)


class Refusal(Exception):
    """A call refused before it ran: its status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


def credentials_of(metadata: Any) -> tuple[str | None, str | None]:
    """(bearer token, API key) presented in a call's metadata; None for each one absent."""
    headers = {str(k).lower(): v for k, v in (metadata or ()) if isinstance(v, str)}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None if scheme.lower() == "bearer" else None), headers.get("x-api-key") or None


async def _principal(state: Any, token: str | None, key: str | None) -> Principal:
    if token:
        try:
            return read_token(state.settings, token)
        except InvalidTokenError as exc:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc
    if key:
        principal = await state.credentials.authenticate_key(key)
        if principal is None:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "the API key is unknown or revoked")
        return principal
    raise Refusal(grpc.StatusCode.UNAUTHENTICATED,
                  "send authorization: Bearer <token> (POST /auth/token) or x-api-key metadata")


async def authenticate(state: Any, metadata: Any, required: Role = Role.VIEWER) -> Principal:
    """The call's principal, allowed ``required``; Refusal otherwise."""
    principal = await _principal(state, *credentials_of(metadata))
    notation = principal.rate_limit or state.settings.rate_limit
    verdict = await state.limiter.hit(notation, "client", principal.actor)
    if not verdict.allowed:
        raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"more than {notation}: retry in {verdict.retry_after_s} s")
    if not principal.role.allows(required):
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                      f"needs the {required} role, {principal.actor} is {principal.role}")
    return principal
