"""``python -m streams worker``: create the topics, then run the faust worker."""
from __future__ import annotations

import asyncio
import sys

from common.logs import configure_logging
from common.settings import get_settings
from streams.admin import ensure_topics


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(ensure_topics(settings))
    from streams.app import app  # imported late: faust binds the running loop on import

    if len(sys.argv) == 1:
        sys.argv += ["worker", "--loglevel", settings.log_level.lower()]
    app.main()


if __name__ == "__main__":
    main()
