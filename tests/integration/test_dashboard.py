"""The live dashboard (GET /dashboard, api/static/dashboard/) in a real headless browser.

Playwright drives Debian's chromium (scripts/browser.sh installs it; Playwright's own browser
download cannot be had here). A viewer signs in on the page; changes made through the API must
show on it from the WebSocket, within a second of the API's answer.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, WebSocketRoute, async_playwright, expect

from api.routes.dashboard import CONTENT_SECURITY_POLICY

from .conftest import ROOT, assert_invariants, create_stocked_product, new_sku

ARTIFACTS = ROOT / ".local" / "artifacts"
SCREENSHOT = ARTIFACTS / "dashboard.png"
TIMEOUT_MS = 10_000


def _chromium() -> str:
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    done = subprocess.run([str(ROOT / "scripts" / "browser.sh"), "path"], capture_output=True, text=True)
    assert done.returncode == 0, "no chromium: run `scripts/browser.sh ensure` (`make test` does)"
    return done.stdout.strip()


@pytest.fixture
async def browser():
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium's sandbox refuses to run as root
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), headless=True, args=args)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def viewer(client) -> tuple[str, str]:
    """A viewer's name and password: the page needs no more than reads and the WebSocket."""
    name, password = new_sku("viewer"), secrets.token_urlsafe(18)
    response = await client.post("/auth/users", json={"username": name, "password": password, "role": "viewer"})
    assert response.status_code == 201, response.text
    return name, password


class Console:
    """The page's console errors and uncaught exceptions, less the analytics endpoints' 404s
    (other parts of the API that may not be there yet: the page shows "no data" for them)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if "/analytics/" in url and "404" in message.text:
            return
        self.errors.append(f"{message.text} ({url})")


async def _sign_in(page: Page, base_url: str, name: str, password: str) -> None:
    await page.goto(f"{base_url}/dashboard")
    await page.fill("#username", name)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    await expect(page.get_by_test_id("ws-status")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("user")).to_contain_text(name)


async def _watch(page: Page, testid: str, selector: str, text: str) -> None:
    """From now on, record (window.__seenAt, epoch ms) when ``selector`` in the row ``testid``
    first reads ``text``: the moment the DOM changed, not when a poll noticed it."""
    await page.evaluate("""([testid, selector, text]) => {
        window.__seenAt = null;
        const check = () => {
            const row = document.querySelector(`[data-testid="${CSS.escape(testid)}"]`);
            const node = row && row.querySelector(selector);
            if (window.__seenAt === null && node && node.textContent === text) {
                window.__seenAt = performance.timeOrigin + performance.now();
            }
        };
        new MutationObserver(check).observe(document.body, {subtree: true, childList: true, characterData: true});
        check();
    }""", [testid, selector, text])


async def _seen_at(page: Page) -> float:
    await page.wait_for_function("() => window.__seenAt !== null", timeout=TIMEOUT_MS)
    return await page.evaluate("() => window.__seenAt")


async def test_the_page_is_public_strict_and_undocumented(api, client):
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as anonymous:
        page = await anonymous.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert "<script>" not in page.text, "no inline script: the policy would refuse it"
        script = await anonymous.get("/dashboard/app.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        for outside in ("/dashboard/../api/main.py", "/dashboard/%2e%2e/%2e%2e/pyproject.toml",
                        "/dashboard/nothing.js", "/dashboard/vendor/uPlot.VERSION"):
            response = await anonymous.get(outside)
            assert response.status_code == 404, (outside, response.status_code)
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]


async def test_a_viewer_sees_changes_live_within_a_second(api, client, browser, viewer, settings, engine):
    sku = await create_stocked_product(client, 10)
    response = await client.post(f"/inventory/{sku}/low-stock-threshold", json={"threshold": 5})
    assert response.status_code == 200, response.text
    page = await browser.new_page(viewport={"width": 1400, "height": 1100})
    console = Console(page)
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    offsets: list[int] = []

    def through(ws: WebSocketRoute) -> None:  # the page's WebSockets, passed through and watched
        server = ws.connect_to_server()
        sockets.append((ws, server))

        def relay(message) -> None:  # an event's offset, or where a subscription starts
            data = json.loads(message)
            offset = data.get("after") if data.get("type") == "subscribed" else data.get("offset")
            if isinstance(offset, int):
                offsets.append(offset)
            ws.send(message)
        server.on_message(relay)

    await page.route_web_socket("**/ws/inventory*", through)
    await _sign_in(page, api.base_url, *viewer)
    row = page.get_by_test_id("warehouse-default")
    await expect(row).to_be_visible(timeout=TIMEOUT_MS)
    assert parse_qs(urlsplit(sockets[0][0].url).query)["access_token"], "the token rides on the URL"

    # A removal: its level shows on the page within a second of the API's answer.
    level = f"level-{sku}-default"
    await _watch(page, level, ".on-hand", "7")
    response = await client.post(f"/inventory/{sku}/update", json={
        "quantity_change": -3, "reason": "damaged", "warehouse": "default"})
    answered_ms, answered = time.time() * 1000, time.monotonic()
    assert response.status_code == 200, response.text
    latency_s = (await _seen_at(page) - answered_ms) / 1000
    polled_s = time.monotonic() - answered
    print(f"dashboard: DOM changed {latency_s * 1000:.0f} ms after the API's answer "
          f"(noticed by the test after {polled_s * 1000:.0f} ms)")
    assert latency_s < 1.0
    await expect(page.get_by_test_id(level).locator(".available")).to_have_text("7")
    # The warehouse's stored units moved with the event, to what the API says now.
    stored = (await client.get("/warehouses/default")).json()["stored"]
    await expect(row.locator(".stored")).to_have_text(f"{stored:,}", timeout=TIMEOUT_MS)

    # The WebSocket drops (as when an API process restarts): the page says so, comes back by
    # itself and, when the server numbers its events, resumes after the last offset it saw.
    await page.evaluate("""() => {
        window.__states = [];
        const status = document.querySelector('[data-testid="ws-status"]');
        new MutationObserver(() => window.__states.push(status.dataset.state))
            .observe(status, {attributes: true, attributeFilter: ["data-state"]});
    }""")
    page_side, server_side = sockets[-1]
    await server_side.close(code=1012, reason="service restart")
    await page_side.close(code=1012, reason="service restart")
    last_seen = max(offsets, default=None)
    # A change while the page is away (it waits 0.25 s at least): replayed, or live if it is back.
    response = await client.post(f"/inventory/{sku}/update", json={
        "quantity_change": -1, "reason": "damaged", "warehouse": "default"})
    assert response.status_code == 200, response.text
    await page.wait_for_function("() => window.__states.at(-1) === 'live'", timeout=TIMEOUT_MS)
    assert "reconnecting" in await page.evaluate("() => window.__states"), "the page showed the drop"
    assert len(sockets) == 2, "the page reconnected, once"
    resumed = parse_qs(urlsplit(sockets[-1][0].url).query)
    assert resumed.get("after") == (None if last_seen is None else [str(last_seen)])
    await expect(page.get_by_test_id(level).locator(".on-hand")).to_have_text("6", timeout=TIMEOUT_MS)

    # Crossing the threshold (6 -> 4 < 5): an alert and a low-stock row, live.
    response = await client.post(f"/inventory/{sku}/update", json={
        "quantity_change": -2, "reason": "damaged", "warehouse": "default"})
    assert response.status_code == 200, response.text
    alert = page.get_by_test_id(f"alert-{sku}-default")
    await expect(alert).to_contain_text("4 available", timeout=TIMEOUT_MS)
    await expect(alert).to_contain_text("below 5")
    await expect(page.get_by_test_id(f"low-{sku}-default").locator(".available")).to_have_text("4")
    await expect(page.get_by_test_id(level).locator(".on-hand")).to_have_text("4")

    # A row's SKU chooses the forecast: a chart, or "no data" while there is none; never broken.
    await page.get_by_test_id(level).click()
    await expect(page.get_by_test_id("forecast-sku")).to_have_value(sku)
    drawn_or_empty = page.locator("#forecast-chart canvas, #forecast-empty:not([hidden])")
    await expect(drawn_or_empty.first).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#demand-chart canvas, #demand-empty:not([hidden])").first).to_be_visible()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"dashboard: screenshot {SCREENSHOT}")
    assert Path(SCREENSHOT).stat().st_size > 0
    assert not console.errors, "\n".join(console.errors)
    await page.close()
    await assert_invariants(settings, engine, [sku])


_HOURS = ["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"]
ANALYTICS = {
    "series": [{"window_start": t, "demand_units": d, "rejected_units": r, "committed_units": c}
               for t, d, r, c in zip(_HOURS, (12, 30, 18), (0, 4, 1), (10, 22, 15))],
    "totals": {"stockout_rate": 0.0833, "stock_value": "1234.50"},
    "low_stock": [{"warehouse": "default", "skus_low": 2}],
}
FORECAST = {
    "has_history": True, "reason": None, "method": "AutoETS", "trend": "rising",
    "daily_demand": [{"date": "2026-01-0%d" % d, "units": d} for d in range(1, 6)],
    "forecast": [{"date": "2026-01-0%d" % d, "units": 5.5, "low": 3.0, "high": 8.0} for d in range(6, 9)],
    "reorder_point": 42, "days_of_cover": 3.5, "stockout_date": "2026-01-09",
}


async def test_the_charts_draw_what_the_analytics_answer_and_show_its_text_as_text(
        api, client, browser, viewer):
    """The analytics endpoints' answers stood in for (their figures need hours of history): the
    charts draw them under the page's CSP, and text from the API never becomes markup."""
    hostile = '<img src=x data-testid="injected">'
    page = await browser.new_page(viewport={"width": 1400, "height": 1100})
    console = Console(page)

    async def analytics(route) -> None:
        await route.fulfill(json=ANALYTICS)

    async def forecast(route) -> None:
        sku = route.request.url.rsplit("/", 1)[1]
        body = FORECAST if sku == "SKU-CHARTED" else {"has_history": False, "reason": hostile}
        await route.fulfill(json={**body, "sku": sku})

    await page.route("**/analytics/inventory?*", analytics)
    await page.route("**/analytics/forecast/*", forecast)
    await _sign_in(page, api.base_url, *viewer)
    await expect(page.locator("#demand-chart canvas")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("demand-empty")).to_be_hidden()
    await expect(page.get_by_test_id("demand-totals")).to_have_text(
        "stockout rate 8.3 % · stock value 1234.50 · default: 2 SKUs low")

    await page.fill("#forecast-sku", "SKU-CHARTED")
    await page.click("#forecast-form button[type=submit]")
    await expect(page.locator("#forecast-chart canvas")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("forecast-summary")).to_contain_text(
        "reorder point 42 · 3.5 days of cover · stockout 2026-01-09 · method AutoETS · trend rising")

    await page.fill("#forecast-sku", "SKU-NO-HISTORY")
    await page.click("#forecast-form button[type=submit]")
    await expect(page.get_by_test_id("forecast-empty")).to_have_text(f"no data: {hostile}", timeout=TIMEOUT_MS)
    await expect(page.locator("#forecast-chart canvas")).to_have_count(0)
    await expect(page.get_by_test_id("injected")).to_have_count(0)
    assert not console.errors, "\n".join(console.errors)
    await page.close()
