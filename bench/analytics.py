"""How far the analytics worker is behind ``stock-events``: its consumer group's committed
offsets against the partitions' ends (``bench.with_analytics`` measures it caught up)."""
from __future__ import annotations

import asyncio
import logging
import time

from common.settings import Settings
from streams.admin import consumer_group_lag
from streams.topics import STOCK_EVENTS

__all__ = ["analytics_lag", "analytics_caught_up"]

log = logging.getLogger(__name__)


async def analytics_lag(settings: Settings) -> int:
    """Offsets of ``stock-events`` past the analytics group's committed ones (markers included)."""
    return sum((await consumer_group_lag(settings, settings.analytics_app_id, STOCK_EVENTS)).values())


async def analytics_caught_up(settings: Settings, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait, bounded, until the analytics group is at most a commit marker behind per partition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = await consumer_group_lag(settings, settings.analytics_app_id, STOCK_EVENTS)
        if all(behind <= 1 for behind in lag.values()):
            return True
        log.info("analytics worker %s records behind", sum(lag.values()))
        await asyncio.sleep(poll_s)
    return False
