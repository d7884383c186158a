"""The OpenAPI document, with every error answer declared as RFC 9457 problem+json.

Routes list the errors particular to them (404, 409 ...); the ones every operation can give are
added here, so no operation can miss one: 500 for all; 400 (malformed JSON) and 422 for those
with a body or parameters; 401 and 403 for those with a security requirement; 429 for those that
are rate limited. Every 4xx/5xx answer is given the Problem schema under application/problem+json.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from api.problems import MEDIA_TYPE, PROBLEM_TYPE_BASE

__all__ = ["ProblemOut", "install_openapi"]

_REF = {"$ref": "#/components/schemas/Problem"}
# Public operations' own answers: the login refuses wrong credentials (401) and is rate limited
# per client address (429).
_PUBLIC_STATUSES: dict[tuple[str, str], list[int]] = {("post", "/auth/token"): [401, 429]}


class FieldErrorOut(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    msg: str
    type: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details; extension members (``reason``, ``errors`` ...) may follow."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "insufficient-stock"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldErrorOut] | None = Field(None, description="each invalid field (400, 422)")


_COMMON: dict[int, str] = {400: "Malformed JSON", 401: "Missing, invalid or expired credentials",
                           403: "The credentials' role is too weak", 422: "Invalid request",
                           429: "Too many requests: retry after Retry-After seconds",
                           500: "Internal error"}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}}


def _statuses(method: str, path: str, op: dict[str, Any]) -> list[int]:
    statuses = [500]
    if op.get("requestBody") or op.get("parameters"):
        statuses += [400, 422] if op.get("requestBody") else [422]
    if op.get("security"):
        statuses += [401, 403, 429]
    else:
        statuses += _PUBLIC_STATUSES.get((method, path), [])
    return statuses


def _declare_problems(method: str, path: str, op: dict[str, Any]) -> None:
    responses = op.setdefault("responses", {})
    for status in _statuses(method, path, op):
        responses.setdefault(str(status), {"description": _COMMON[status]})
    for status, response in responses.items():
        if not status[0] in "45":
            continue
        example = next((c.get("example") for c in response.get("content", {}).values()
                        if "example" in c), None)
        response["content"] = {MEDIA_TYPE: {"schema": _REF, **({"example": example} if example else {})}}
        if status == "429":
            response["headers"] = _RETRY_AFTER


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422: replaced
            schemas.pop(name, None)
        problem = ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        for path, operations in doc["paths"].items():
            for method, op in operations.items():
                _declare_problems(method, path, op)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


