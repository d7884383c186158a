"""Polling a read: what a test does to see a saga's next step or the read model catch up."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

__all__ = ["get_when"]


async def get_when(client, path: str, settled: Callable[[Any], bool], timeout_s: float = 20) -> Any:
    """``GET path``'s body once it answers 200 and ``settled(body)`` holds, or at the deadline
    (the caller's assertion then shows what it got)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(path)
        if response.status_code == 200 and settled(response.json()) or time.monotonic() > deadline:
            return response.json()
        await asyncio.sleep(0.1)
