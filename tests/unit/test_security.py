"""Tokens, roles, secrets and the OpenAPI document's error declarations, without servers."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from api.main import create_app
from api.security import Role, issue_token
from api.security.tokens import InvalidTokenError, read_token
from common.settings import DEFAULT_SECRET, InsecureSettingsError, Settings

SECRET = "s" * 40


def _settings(**overrides) -> Settings:
    return Settings(jwt_secret=SECRET, admin_password="a-real-password", **overrides)


@given(st.sampled_from(list(Role)), st.sampled_from(list(Role)))
def test_a_role_allows_exactly_the_roles_up_to_itself(held, required):
    assert held.allows(required) == (list(Role).index(held) >= list(Role).index(required))


def test_a_token_names_its_subject_and_role_until_it_expires():
    settings = _settings()
    principal = read_token(settings, issue_token(settings, "alice", Role.OPERATOR))
    assert (principal.name, principal.role, principal.actor) == ("alice", Role.OPERATOR, "user:alice")
    with pytest.raises(InvalidTokenError, match="expired"):
        read_token(settings, issue_token(settings, "alice", Role.OPERATOR, ttl_s=10, now=0))
    with pytest.raises(InvalidTokenError):
        read_token(Settings(jwt_secret="t" * 40),
                   issue_token(settings, "alice", Role.ADMIN))


def test_placeholder_secrets_are_refused_outside_development():
    # Explicit values: the integration fixtures export real secrets into this process's environment.
    with pytest.raises(InsecureSettingsError, match="INVENTORY_JWT_SECRET"):
        Settings(environment="production", jwt_secret=DEFAULT_SECRET, admin_password="a-real-password").check_secrets()
    with pytest.raises(InsecureSettingsError, match="INVENTORY_ADMIN_PASSWORD"):
        Settings(environment="production", jwt_secret=SECRET, admin_password=DEFAULT_SECRET).check_secrets()
    with pytest.raises(InsecureSettingsError, match="32"):
        Settings(environment="production", jwt_secret="short", admin_password="x").check_secrets()
    Settings(environment="development").check_secrets()
    _settings(environment="production").check_secrets()


def test_the_api_process_refuses_to_start_with_the_placeholder_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env.update(INVENTORY_ENVIRONMENT="production", INVENTORY_API_PORT="0")
    done = subprocess.run([sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "INVENTORY_JWT_SECRET" in done.stderr and DEFAULT_SECRET in done.stderr


@pytest.fixture(scope="module")
def openapi() -> dict:
    return create_app(_settings()).openapi()


def test_every_error_answer_of_every_operation_is_problem_json(openapi):
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            statuses = {s for s in op["responses"] if s[0] in "45"}
            assert "500" in statuses, (method, path)
            if op.get("security"):
                assert {"401", "403", "429"} <= statuses, (method, path)
                assert op["responses"]["429"]["headers"]["Retry-After"]["required"]
            if op.get("requestBody"):
                assert {"400", "422"} <= statuses, (method, path)
            for status in statuses:
                content = op["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == problem
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
