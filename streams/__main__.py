"""``python -m streams stock|ledger [faust worker options]``: create the topics, run one worker role.

``stock`` runs the stock agent (the single writer of every SKU), ``ledger`` the PostgreSQL sink;
see ``streams/app.py`` for why they are separate processes. ``worker`` is kept as another name
for ``stock``.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys

from common.logs import configure_logging
from common.settings import get_settings
from streams.admin import ensure_topics

_ALIASES = {"worker": "stock"}


def main() -> None:
    args = sys.argv[1:]
    role = _ALIASES.get(args[0], args[0]) if args and not args[0].startswith("-") else "stock"
    if args and not args[0].startswith("-"):
        args = args[1:]
    os.environ["INVENTORY_WORKER_ROLE"] = role
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(ensure_topics(settings))
    # Imported late: faust binds the running loop on import.
    from streams.app import agents_module, app

    importlib.import_module(agents_module(settings.worker_role))

    options = args or ["--loglevel", settings.log_level.lower()]
    # faust's CLI starts its web server unless told not to (and binds 0.0.0.0); nothing here uses it.
    sys.argv = [sys.argv[0], "worker", "--without-web", *options]
    app.main()


if __name__ == "__main__":
    main()
