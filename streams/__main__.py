"""``python -m streams stock|ledger|analytics [options]``: create the topics, run one worker role.

- ``stock`` (``worker`` is another name for it): the faust worker of the stock, warehouse and
  order agents, the single writers of every SKU, every warehouse's capacity ledger and every
  order's saga
  (``streams/app.py``); the options are faust's worker options. It creates the default
  warehouse at start.
- ``ledger``: the PostgreSQL sink, a plain consumer group (``streams/ledger/worker.py``); its one
  option is ``--loglevel``.
- ``analytics``: the stream analytics, a faust app of its own (``streams/analytics/``): windowed
  tables over ``stock-events``, published on ``inventory-analytics`` and persisted; faust's worker
  options.

Each serves its Prometheus metrics on a port of its own (``worker_metrics_port``,
``ledger_metrics_port``, ``analytics_metrics_port``; ``streams/metrics.py``).

They run as separate processes: in one faust consumer the sink's fetches delayed the decisions,
and the sink may fall behind without slowing a single reservation (bench/README.md).
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path

from common.logs import configure_logging
from common.settings import Settings, get_settings
from streams.admin import create_default_warehouse, ensure_topics_when_up, kafka_cluster_id
from streams.metrics import serve_metrics
from streams.partition.local import claim_data_dir

ROLES = ("stock", "ledger", "analytics")
_ALIASES = {"worker": "stock"}


def _split(args: list[str]) -> tuple[str, list[str]]:
    if not args or args[0].startswith("-"):
        return "stock", args
    role = _ALIASES.get(args[0], args[0])
    if role not in ROLES:
        sys.exit(f"unknown role {args[0]!r}: choose one of {', '.join(ROLES)}")
    return role, args[1:]


def _run_stock(args: list[str], settings: Settings) -> None:
    claim_data_dir(Path(settings.worker_data_dir), asyncio.run(kafka_cluster_id(settings)),
                   settings.changelog_delete_retention_s)
    asyncio.run(create_default_warehouse(settings))
    # Imported late: faust binds the running loop on import.
    from streams.app import app

    importlib.import_module("streams.stock.agents")  # registers the agents; the app does not scan
    importlib.import_module("streams.warehouses.agents")
    importlib.import_module("streams.orders.agents")
    importlib.import_module("streams.stock.clock")  # and the timer that writes the ticks

    serve_metrics(settings.metrics_host, settings.worker_metrics_port, "stock")
    options = args or ["--loglevel", settings.log_level.lower()]
    # faust's CLI starts its web server unless told not to (and binds 0.0.0.0); nothing here uses it.
    sys.argv = [sys.argv[0], "worker", "--without-web", *options]
    app.main()


def _run_analytics(args: list[str], settings: Settings) -> None:
    # Background work: the reservation path's processes come first for the CPU (settings.py).
    os.nice(settings.analytics_nice)
    # Its tables' RocksDB, like the stock worker's state, is only good for the cluster it came from.
    claim_data_dir(Path(settings.analytics_data_dir), asyncio.run(kafka_cluster_id(settings)),
                   settings.changelog_delete_retention_s)
    from streams.analytics.app import app  # late, as above

    importlib.import_module("streams.analytics.agents")
    serve_metrics(settings.metrics_host, settings.analytics_metrics_port, "analytics")
    options = args or ["--loglevel", settings.log_level.lower()]
    sys.argv = [sys.argv[0], "worker", "--without-web", *options]
    app.main()


def main() -> None:
    role, args = _split(sys.argv[1:])
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(ensure_topics_when_up(settings, settings.broker_wait_s))
    if role == "ledger":
        from streams.ledger.worker import run

        run(args, settings)
        return
    if role == "analytics":
        _run_analytics(args, settings)
        return
    _run_stock(args, settings)


if __name__ == "__main__":
    main()
