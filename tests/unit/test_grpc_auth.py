"""A gRPC call's credentials, checked with the REST edge's functions (no server, no database)."""
from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from api.grpc.auth import Refusal, authenticate, credentials_of
from api.security import Principal, Role, issue_token
from api.security.ratelimit import Verdict
from common.settings import Settings

SETTINGS = Settings(jwt_secret="s" * 40, admin_password="a-real-password", rate_limit="100/minute")
KEY = "ik_k1_secret"


class _Keys:
    async def authenticate_key(self, presented: str) -> Principal | None:
        return Principal("k1", Role.VIEWER, "key", "5/second") if presented == KEY else None


class _Limiter:
    def __init__(self, allowed: bool = True) -> None:
        self.allowed, self.hits = allowed, []

    async def hit(self, notation: str, *identity: str) -> Verdict:
        self.hits.append((notation, *identity))
        return Verdict(self.allowed, 100, 0, 7)


def _state(allowed: bool = True) -> SimpleNamespace:
    return SimpleNamespace(settings=SETTINGS, credentials=_Keys(), limiter=_Limiter(allowed))


def _bearer(role: Role = Role.VIEWER, **kwargs) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {issue_token(SETTINGS, 'alice', role, **kwargs)}"),)


async def _refusal(state, metadata, required: Role = Role.VIEWER) -> Refusal:
    with pytest.raises(Refusal) as caught:
        await authenticate(state, metadata, required)
    return caught.value


async def test_a_viewers_token_or_api_key_is_accepted_and_rate_limited_as_in_rest():
    state = _state()
    assert await authenticate(state, _bearer()) == Principal("alice", Role.VIEWER, "user")
    assert await authenticate(state, (("x-api-key", KEY),)) == Principal("k1", Role.VIEWER, "key", "5/second")
    # The key's own limit, else the default, each counted per principal as REST counts them.
    assert state.limiter.hits == [("100/minute", "client", "user:alice"), ("5/second", "client", "key:k1")]


@pytest.mark.parametrize("metadata", [
    None, (), (("authorization", "Bearer "),), (("authorization", "Basic YWxpY2U6cHc="),),
    (("authorization", "Bearer not-a-jwt"),), (("x-api-key", "ik_k1_wrong"),), (("x-api-key", ""),),
])
async def test_missing_or_bad_credentials_are_unauthenticated(metadata):
    assert (await _refusal(_state(), metadata)).code is grpc.StatusCode.UNAUTHENTICATED


async def test_an_expired_token_or_one_signed_with_another_secret_is_unauthenticated():
    expired = _bearer(ttl_s=10, now=0)
    assert "expired" in (await _refusal(_state(), expired)).details
    forged = (("authorization", f"Bearer {issue_token(Settings(jwt_secret='t' * 40), 'eve', Role.ADMIN)}"),)
    assert (await _refusal(_state(), forged)).code is grpc.StatusCode.UNAUTHENTICATED


async def test_a_too_weak_role_is_permission_denied_and_a_limit_resource_exhausted():
    denied = await _refusal(_state(), _bearer(Role.VIEWER), required=Role.OPERATOR)
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED and "operator" in denied.details
    assert await authenticate(_state(), _bearer(Role.ADMIN), required=Role.OPERATOR)
    limited = await _refusal(_state(allowed=False), _bearer())
    assert limited.code is grpc.StatusCode.RESOURCE_EXHAUSTED and "7 s" in limited.details


def test_credentials_are_read_from_lower_case_metadata_and_binary_values_ignored():
    assert credentials_of((("Authorization", "bearer abc"), ("x-api-key", KEY))) == ("abc", KEY)
    assert credentials_of((("x-api-key-bin", b"\x00"), ("authorization", "Token abc"))) == (None, None)
    assert credentials_of(None) == (None, None)
