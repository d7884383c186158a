"""GET /dashboard: the live dashboard page (api/static/dashboard/), fed by the REST API and the WebSocket.

The page and its assets hold no data, so they are public and left out of the OpenAPI document
(every documented operation is secured, and tests/integration/test_auth.py checks that). The
browser signs in with ``POST /auth/token`` and reads everything else with the bearer token.

Every answer carries a strict Content-Security-Policy: scripts, styles and connections only from
this origin (the WebSocket included), no inline script or style, no framing. The page builds its
DOM with ``textContent`` only, so data from the API is never markup.
"""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import Problem

__all__ = ["router", "STATIC_DIR", "CONTENT_SECURITY_POLICY"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "dashboard"

# connect-src 'self' covers the WebSocket of the same host too (CSP level 3).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files, changed with the code: revalidate each load rather than serve a stale page.
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


@router.get("")
async def dashboard_page() -> FileResponse:
    """The page itself; it names its assets by absolute paths, so ``/dashboard/`` serves it too."""
    return _file(STATIC_DIR / "index.html")


@router.get("/{asset:path}")
async def dashboard_asset(asset: str) -> FileResponse:
    """A file of the page: only those under the static directory, of the kinds it ships."""
    path = (STATIC_DIR / (asset or "index.html")).resolve()
    if not path.is_relative_to(STATIC_DIR) or path.suffix not in _MEDIA_TYPES or not path.is_file():
        raise Problem(404, "Not found", f"no dashboard file {asset}")
    return _file(path)


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_HEADERS)
