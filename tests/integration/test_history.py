"""The audit history (GET /inventory/{product_id}/history): a scripted history of a fresh SKU
across two warehouses, by an administrator, an operator's API key and the clock, read back whole,
filtered by warehouse and time, and page by page."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx

from .conftest import assert_invariants, auth_headers, new_sku
from .waits import get_when

async def _post(client, path: str, body: dict, key: str, expected: int) -> dict:
    response = await client.post(path, json=body, headers={"Idempotency-Key": key})
    assert response.status_code == expected, response.text
    return response.json()


async def _history(client, sku: str, **params) -> dict:
    response = await client.get(f"/inventory/{sku}/history", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _level(entry: dict, which: str) -> tuple[int, int, int]:
    level = entry[which]
    return level["on_hand"], level["reserved"], level["available"]


async def _script(client, keyed, sku: str, other: str) -> list[tuple]:
    """Run the history; what each listed change must say, oldest first: (command id, actor kind,
    event type, warehouse, reason, reservation id, before, after)."""
    ids = {step: f"{sku}-{step}" for step in ("in-a", "in-b", "hold", "refused", "commit", "out", "short",
                                              "threshold")}
    await _post(client, f"/inventory/{sku}/update", {"quantity_change": 10, "reason": "initial receipt",
                                                     "warehouse": "default"}, ids["in-a"], 200)
    await _post(client, f"/inventory/{sku}/update", {"quantity_change": 6, "reason": "supplier delivery",
                                                     "warehouse": other}, ids["in-b"], 200)
    hold = f"hold-{sku}"
    await _post(keyed, "/reservations", {"product_id": sku, "order_id": "o-1", "quantity": 3,
                                         "reservation_id": hold}, ids["hold"], 201)
    await _post(keyed, "/reservations", {"product_id": sku, "order_id": "o-2", "quantity": 100},
                ids["refused"], 409)  # a rejection: changes nothing, not listed
    await _post(client, f"/reservations/{hold}/commit", {}, ids["commit"], 200)
    await _post(client, f"/inventory/{sku}/update", {"quantity_change": -2, "reason": "damaged in storage",
                                                     "warehouse": other}, ids["out"], 200)
    short = f"short-{sku}"
    await _post(keyed, "/reservations", {"product_id": sku, "order_id": "o-3", "quantity": 1, "ttl_seconds": 1,
                                         "warehouse": other, "reservation_id": short}, ids["short"], 201)
    expired = await get_when(client, f"/reservations/{short}", lambda r: r["state"] == "EXPIRED")
    assert expired["state"] == "EXPIRED", expired
    await _post(client, f"/inventory/{sku}/low-stock-threshold", {"threshold": 5, "warehouse": "default"},
                ids["threshold"], 200)
    return [
        (ids["in-a"], "user", "StockAdjusted", "default", "initial receipt", None, (0, 0, 0), (10, 0, 10)),
        (ids["in-b"], "user", "StockAdjusted", other, "supplier delivery", None, (0, 0, 0), (6, 0, 6)),
        (ids["hold"], "key", "Reserved", "default", None, hold, (10, 0, 10), (10, 3, 7)),
        (ids["commit"], "user", "Committed", "default", None, hold, (10, 3, 7), (7, 0, 7)),
        (ids["out"], "user", "StockAdjusted", other, "damaged in storage", None, (6, 0, 6), (4, 0, 4)),
        (ids["short"], "key", "Reserved", other, None, short, (4, 0, 4), (4, 1, 3)),
        ("expire:", "clock", "Expired", other, None, short, (4, 1, 3), (4, 0, 4)),
        (ids["threshold"], "user", "LowStockThresholdSet", "default", None, None, (7, 0, 7), (7, 0, 7)),
    ]


async def test_the_history_lists_every_change_with_its_actor_command_reason_and_levels_by_page_and_filter(
        client, api, settings, engine):
    sku, other = new_sku("HIST"), f"wh-{uuid.uuid4().hex[:10]}"
    await _post(client, "/products", {"sku": sku, "name": "audited"}, f"{sku}-create", 201)
    await _post(client, "/warehouses", {"warehouse_id": other, "name": "second", "capacity": 100},
                f"{sku}-wh", 201)
    made = await _post(client, "/auth/keys", {"name": f"history-{sku}", "role": "operator"}, f"{sku}-key", 201)
    actors = {"user": "user:tests", "key": f"key:{made['key_id']}", "clock": "clock"}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60,
                                 headers={"X-API-Key": made["api_key"]}) as keyed:
        expected = await _script(client, keyed, sku, other)

    whole = await _history(client, sku)
    assert whole["product_id"] == sku and whole["next_cursor"] is None
    entries = whole["entries"][::-1]  # oldest first
    assert len(entries) == len(expected), [(e["event_type"], e["command_id"]) for e in entries]
    for entry, (command, actor, kind, warehouse, reason, reservation, before, after) in zip(entries, expected):
        assert entry["command_id"].startswith(command) if command == "expire:" else entry["command_id"] == command
        assert (entry["actor"], entry["event_type"], entry["warehouse"]) == (actors[actor], kind, warehouse)
        assert (entry["reason"], entry["reservation_id"]) == (reason, reservation), entry
        assert (_level(entry, "before"), _level(entry, "after")) == (before, after), entry
        assert (entry["change"]["on_hand"], entry["change"]["reserved"]) == (after[0] - before[0], after[1] - before[1])
    assert not any(e["command_id"] == f"{sku}-refused" for e in entries)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(set(seqs))
    times = [datetime.fromisoformat(e["occurred_at"]) for e in entries]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    for warehouse in ("default", other):  # each change starts where the one before left the level
        chain = [e for e in entries if e["warehouse"] == warehouse]
        assert all(_level(a, "after") == _level(b, "before") for a, b in zip(chain, chain[1:]))
    inventory = (await client.get(f"/inventory/{sku}")).json()
    last = {e["warehouse"]: _level(e, "after") for e in entries}
    assert {lv["warehouse"]: (lv["on_hand"], lv["reserved"], lv["available"])
            for lv in inventory["warehouses"]} == last

    # A warehouse's changes only, still newest first.
    mine = (await _history(client, sku, warehouse=other))["entries"]
    assert mine == [e for e in whole["entries"] if e["warehouse"] == other] and len(mine) == 4

    # A time range: [since, until), around a middle entry, and open on either side.
    middle = entries[3]
    at = times[3]
    exactly = await _history(client, sku, since=at.isoformat(), until=(at + timedelta(milliseconds=1)).isoformat())
    assert exactly["entries"] == [middle]
    later = (await _history(client, sku, since=at.isoformat()))["entries"]
    assert later == [e for e, t in zip(whole["entries"], times[::-1]) if t >= at] and later[-1] == middle
    earlier = (await _history(client, sku, until=at.isoformat()))["entries"]
    assert earlier == whole["entries"][len(later):]

    # Pages of 2 walk every entry once, in order, then the cursor is null.
    pages, cursor = [], None
    for _ in range(len(entries) + 1):  # bounded
        page = await _history(client, sku, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2, 2]
    assert [e for p in pages for e in p] == whole["entries"]
    # A page of the other warehouse, from a cursor, stays in that warehouse.
    first = await _history(client, sku, warehouse=other, limit=3)
    rest = await _history(client, sku, warehouse=other, limit=3, cursor=first["next_cursor"])
    assert first["entries"] + rest["entries"] == mine and rest["next_cursor"] is None

    # A viewer may read it.
    viewed = await client.get(f"/inventory/{sku}/history", headers=auth_headers(settings, "viewer"))
    assert viewed.status_code == 200 and viewed.json() == whole
    await assert_invariants(settings, engine, [sku])


async def test_an_unknown_product_is_404_a_bad_cursor_or_time_range_422(client, api, settings, engine):
    sku = new_sku("HIST")
    missing = await client.get(f"/inventory/{sku}/history")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    await _post(client, "/products", {"sku": sku, "name": "audited"}, f"{sku}-create", 201)
    assert (await _history(client, sku)) == {"product_id": sku, "entries": [], "next_cursor": None}
    for params in ({"cursor": "not-a-cursor!"}, {"cursor": "MTA="}, {"cursor": "MA"},
                   {"since": "2030-01-02T00:00:00+00:00", "until": "2030-01-01T00:00:00+00:00"},
                   {"since": "2030-01-01T00:00:00"},  # no timezone
                   {"limit": 0}, {"limit": 501}, {"warehouse": "no/such"}):
        response = await client.get(f"/inventory/{sku}/history", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as anonymous:
        assert (await anonymous.get(f"/inventory/{sku}/history")).status_code == 401
    await assert_invariants(settings, engine, [sku])
