"""``python -m api``: serve the edge with uvicorn, configured from the settings class.

Every launcher (``make run``, the tests, the bench, the container) goes through here, so the
server's knobs live in one place. The one that matters: the keep-alive timeout. Uvicorn closes an
idle connection after 5 s by default, the same moment common clients (httpx, browsers) still
consider it reusable; a request sent on it just then fails with a reset. The server must wait
longer than its clients, so it does (``api_keep_alive_s``).
"""
from __future__ import annotations

import uvicorn

from common.settings import get_settings

__all__ = ["main"]


def main() -> None:
    settings = get_settings()
    uvicorn.run("api.main:app", host=settings.api_host, port=settings.api_port,
                timeout_keep_alive=settings.api_keep_alive_s, access_log=False,
                log_config=None)


if __name__ == "__main__":
    main()
