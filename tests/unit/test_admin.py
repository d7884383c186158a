"""A starting worker waits (bounded) for the broker instead of exiting at once."""
from __future__ import annotations

import asyncio
import socket

import pytest
from aiokafka.errors import KafkaConnectionError

from common.settings import Settings
from streams.admin import ensure_topics_when_up


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


async def test_it_retries_until_the_wait_is_over_then_raises():
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(KafkaConnectionError):
        await ensure_topics_when_up(settings, wait_s=2.0)
    assert loop.time() - started >= 2.0, "it gave up before its wait was over"
