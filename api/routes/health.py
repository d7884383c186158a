from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"description": "A dependency is not answering"}})
async def health(request: Request):
    """Public (no credentials: load balancers probe it). 200 when Kafka, PostgreSQL (and the event listener) and Redis all answer, else 503."""
    state = request.app.state
    checks = {"kafka": False, "postgres": False, "events": state.hub.listening.is_set(),
              "redis": False}
    try:
        await state.producer.client.fetch_all_metadata()
        checks["kafka"] = True
    except Exception:
        pass
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["postgres"] = True
    except Exception:
        pass
    try:
        checks["redis"] = bool(await state.redis.ping())
    except Exception:
        pass
    if all(checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    down = ", ".join(name for name, up in checks.items() if not up)
    return problem_response(503, "Degraded", f"not answering: {down}", "degraded", "/health",
                            checks=checks)
