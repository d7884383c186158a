from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request):
    """200 when Kafka, PostgreSQL (and the event listener) and Redis all answer, else 503."""
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
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks},
                        status_code=200 if ok else 503)
