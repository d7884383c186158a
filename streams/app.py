"""The faust app of the stock worker: its consumer group, the stock, warehouse and order agents,
and the clock.

The PostgreSQL sink is not part of it: it runs as its own process and consumer group
(``streams/ledger/worker.py``, see ``streams/__main__.py``).

Processing guarantee: faust's ``at_least_once``; effects are exactly-once by design
(``streams/stock/store.py``), and each partition's writes are committed in transactions of a
producer fenced per partition (``streams/partition/owner.py``), which also keeps a previous owner
from writing after it lost the partition. faust's ``exactly_once`` mode has open bugs around
kill -9 and rebalances, so correctness does not depend on it. The stock table is the agent's own
(one RocksDB per partition, ``streams/partition/local.py``), not a faust Table, so faust keeps no
table and no standby replicas.
"""
from __future__ import annotations

import faust

from common.settings import get_settings
from streams.tuning import app_options, commit_across_offset_gaps, limit_fetch_wait
from streams.topics import ORDER_COMMANDS, STOCK_COMMANDS, WAREHOUSE_COMMANDS

__all__ = ["app", "settings", "stock_commands", "warehouse_commands", "order_commands"]

settings = get_settings()
limit_fetch_wait(settings.consumer_fetch_max_wait_ms)
commit_across_offset_gaps()


app = faust.App(
    settings.app_id,
    **app_options(settings),
    producer_linger=settings.producer_linger_s,
    producer_max_batch_size=settings.producer_batch_bytes,
    datadir=settings.worker_data_dir,
    web_port=settings.worker_web_port,
)

# Commands arrive as bytes and are decoded in the agent, so a malformed record from an upstream
# producer can be dead-lettered instead of being dropped by the consumer. The agent encodes its
# events itself (Avro, ``schemas``) and sends them to ``stock-events`` (streams/partition/owner.py).
stock_commands = app.topic(STOCK_COMMANDS, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")
warehouse_commands = app.topic(WAREHOUSE_COMMANDS, key_type=bytes, value_type=bytes,
                               key_serializer="raw", value_serializer="raw")
order_commands = app.topic(ORDER_COMMANDS, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")
