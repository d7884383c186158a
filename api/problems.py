"""RFC 9457 problem+json for every error the API returns."""
from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["Problem", "problem_response", "install_problem_handlers", "PROBLEM_RESPONSES", "MEDIA_TYPE",
           "PROBLEM_TYPE_BASE"]

log = logging.getLogger(__name__)
PROBLEM_TYPE_BASE = "https://inventory.example/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", kind: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.headers = headers
        self.extra = extra


def problem_response(status: int, title: str, detail: str = "", kind: str = "about:blank",
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body = {"type": kind if kind == "about:blank" else PROBLEM_TYPE_BASE + kind,
            "title": title, "status": status, **({"detail": detail} if detail else {}),
            **({"instance": instance} if instance else {}), **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.kind, request.url.path,
                                exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(400, "Malformed JSON", "the request body is not valid JSON",
                                    "malformed-json", request.url.path, errors=errors)
        # The detail names each field, so a client sees what to fix without reading `errors`.
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return problem_response(422, "Invalid request", fields or "the request does not match its schema",
                                "invalid-request", request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Its headers matter: a 405 names the allowed methods (Allow).
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allowed}
        return problem_response(exc.status_code, str(exc.detail), instance=request.url.path,
                                headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(500, "Internal error", "the error was logged", "internal-error",
                                request.url.path)


def _template(path: str) -> re.Pattern[str]:
    """A path template of the document as a pattern: each ``{parameter}`` one segment."""
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}]+\})", path)))


def _allowed_methods(request: Request) -> str | None:
    """Every documented method of the path (the one with the fewest parameters that matches, as
    routing prefers /inventory/low-stock over /inventory/{product_id}): Starlette's 405 names only
    the methods of the first route whose path matched, so /auth/keys (GET and POST) advertised one.
    None for a path the document does not have (its own Allow stands)."""
    paths = request.app.openapi()["paths"]
    for path in sorted(paths, key=lambda p: p.count("{")):
        if _template(path).fullmatch(request.url.path):
            return ", ".join(sorted(method.upper() for method in paths[path]))
    return None


_EXAMPLE = {"type": PROBLEM_TYPE_BASE + "insufficient-stock", "title": "Insufficient stock",
            "status": 409, "detail": "available 0, asked 1", "instance": "/reservations"}

#: OpenAPI documentation of the error answers, for ``responses=`` on routes.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON", "content": {MEDIA_TYPE: {"example": {
        **_EXAMPLE, "type": PROBLEM_TYPE_BASE + "malformed-json", "title": "Malformed JSON",
        "status": 400, "detail": "the request body is not valid JSON"}}}},
    404: {"description": "Unknown product or reservation", "content": {MEDIA_TYPE: {"example": {
        **_EXAMPLE, "type": PROBLEM_TYPE_BASE + "unknown-product", "title": "Unknown product",
        "status": 404, "detail": "no product SKU-1"}}}},
    409: {"description": "Refused by the SKU's state (e.g. insufficient stock)",
          "content": {MEDIA_TYPE: {"example": _EXAMPLE}}},
    422: {"description": "Invalid request", "content": {MEDIA_TYPE: {"example": {
        **_EXAMPLE, "type": PROBLEM_TYPE_BASE + "invalid-request", "title": "Invalid request",
        "status": 422, "detail": "the request does not match its schema"}}}},
}
