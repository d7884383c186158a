"""Rate limits per client, counted in Redis: a burst over a client's limit gets 429 with
Retry-After, and nobody else is slowed by it."""
from __future__ import annotations

import asyncio

import httpx

from .conftest import auth_headers

BURST = 12


async def _key(client: httpx.AsyncClient, name: str, rate_limit: str | None) -> dict[str, str]:
    made = await client.post("/auth/keys", json={"name": name, "role": "viewer", "rate_limit": rate_limit})
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["api_key"]}


async def test_a_burst_over_a_clients_limit_gets_429_with_retry_after_and_others_are_unaffected(
        api, client, settings):
    noisy = await _key(client, "noisy", "5/minute")
    quiet = await _key(client, "quiet", "5/minute")
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        burst = await asyncio.gather(*(http.get("/warehouses", headers=noisy) for _ in range(BURST)))
        statuses = sorted(r.status_code for r in burst)
        assert statuses == [200] * 5 + [429] * (BURST - 5), statuses
        for refused in (r for r in burst if r.status_code == 429):
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert 1 <= int(refused.headers["retry-after"]) <= 60, refused.headers
            assert refused.json()["retry_after"] == int(refused.headers["retry-after"])
        # Another key, a user's token and the public health check are not slowed by the burst.
        others = [await http.get("/warehouses", headers=quiet) for _ in range(5)]
        others += [await http.get("/warehouses", headers=auth_headers(settings, "viewer", "another-user"))
                   for _ in range(20)]
        assert {r.status_code for r in others} == {200}
        assert (await http.get("/health")).status_code == 200
        # The noisy key is still refused: the window has not moved on.
        assert (await http.get("/warehouses", headers=noisy)).status_code == 429


async def test_a_key_without_its_own_limit_has_the_default_and_a_bad_limit_is_refused(client):
    made = await client.post("/auth/keys", json={"name": "default-limit", "role": "viewer"})
    assert made.status_code == 201 and made.json()["rate_limit"] is None
    for nonsense in ("lots", "0/second"):
        bad = await client.post("/auth/keys", json={"name": "bad", "role": "viewer", "rate_limit": nonsense})
        assert bad.status_code == 422, (nonsense, bad.text)
        assert any(e["loc"][-1] == "rate_limit" for e in bad.json()["errors"]), bad.json()
