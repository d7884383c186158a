"""Schemathesis against the running API: every operation of /openapi.json, every check it has,
as an administrator, a bounded and reproducible number of cases per operation.

No answer may be a 5xx, each must be one its operation documents, with the documented content
type, headers and schema; valid input must be accepted and invalid input refused. Whatever the
fuzzing created must then keep the invariants (no oversell, the ledger folds to the levels ...).
The document is read when the test runs, so an operation added later is fuzzed without editing
this file.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from sqlalchemy import select

from storage.models import products

from .conftest import assert_invariants, auth_headers

# Per operation: at most this many cases in the fuzzing phase (the examples and coverage phases
# add their own, bounded by the schema's size). Fixed seed, deterministic data, no shrinking:
# CI runs the same cases every time, in bounded time.
MAX_EXAMPLES = 25
SEED = 20_260_522


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        # No generated credentials (an X-API-Key of random bytes) next to the administrator's,
        # which each call passes (below).
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "no-shrink": True, "with-security-parameters": False},
        "checks": {
            # All checks. Only one needs configuring to fit documented behaviour:
            "enabled": True,
            # Valid input naming a product, reservation, order or warehouse that does not exist
            # (404), or that the SKU's state refuses (409 insufficient stock, exists, not
            # pending ...) is acceptable, as is 202 "pending" (in 2xx): schemathesis' defaults,
            # kept. 422 is added for the documented refusals no JSON schema can express: rules
            # across fields (quantity_change or an announced quantity of 0, units announced
            # without expected_at, the same product twice in an order's lines or a bundle, a
            # transfer to its own warehouse, since after until, a name of blanks only, which is
            # stripped) and rules on other resources (a component that is a bundle, a variant
            # of a variant, a receipt of a bundle: BUNDLE_HOLDS_NO_STOCK).
            "positive_data_acceptance": {"expected-statuses": [
                "2xx", "3xx", "401", "403", "404", "409", "422", "429"]},
            # A write waits for its decision at most INVENTORY_COMMAND_TIMEOUT_S (10 s), then
            # answers 202; nothing should take longer.
            "max_response_time": 15,
        },
    })


@pytest.fixture(scope="module")
def fuzz_started() -> datetime:
    """Products created after this moment were created by the fuzzing."""
    return datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def api_schema(api, worker, settings, fuzz_started):
    """The document the running API serves (the worker and the ledger run: writes are decided)."""
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json", config=_config(), timeout=30)
    schema.config.update(base_url=api.base_url)
    return schema


@pytest.fixture(autouse=True)
def _node_id(request):
    """schemathesis 4.32's lazy schema reads ``node._nodeid``, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def admin(settings) -> dict[str, str]:
    return auth_headers(settings)


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, admin):
    # As the administrator, whom every operation allows: the checks see what the operation does,
    # not a 401/403 (the auth matrix is tests/integration/test_auth.py). Passed here, not in the
    # config's headers, so `ignored_auth` knows them for explicit, valid credentials, and probes
    # that the operation refuses the same request without them, or with invalid ones.
    case.call_and_validate(headers=admin, timeout=60)


def test_every_check_is_enabled(api_schema):
    """Nothing turned a check off (a config typo, a later edit): all of them run."""
    config = api_schema.config.checks_config_for(operation=None, phase=None)  # type: ignore[arg-type]
    disabled = [check.__name__ for check in CHECKS.get_all() if not config.get_by_name(name=check.__name__).enabled]
    assert not disabled, disabled


async def test_what_the_fuzzing_created_keeps_the_invariants(settings, engine, fuzz_started):
    async with engine.connect() as conn:
        rows = await conn.execute(select(products.c.sku).where(products.c.created_at >= fuzz_started))
        skus = [row.sku for row in rows]
    assert skus, "the fuzzing created no product: did its writes fail?"
    await assert_invariants(settings, engine, skus, timeout_s=60)
