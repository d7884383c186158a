"""Every Kafka topic of the platform, declared in one place and named by domain.

One writer per event topic: the stock agent writes ``stock-events``, ``inventory-alerts``,
``stock-commands-dlq`` and its table's changelog; the warehouse agent writes ``warehouse-events``,
``warehouse-commands-dlq`` and its changelog; the order agent writes ``order-events``,
``order-commands-dlq`` and its changelog; the ledger worker writes ``stock-events-dlq``; the
analytics worker writes ``inventory-analytics`` (and its own tables' changelogs, faust's).
Command topics take commands from the API, upstream systems and the other area's agent (a saga's
next step). Stock commands and events are keyed by SKU, so all of one SKU's traffic is on one
partition, owned by one worker; warehouse commands and events by warehouse id, and order
commands and events by order id, likewise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.settings import Settings

__all__ = ["TopicSpec", "STOCK_COMMANDS", "STOCK_EVENTS", "STOCK_COMMANDS_DLQ", "STOCK_EVENTS_DLQ",
           "INVENTORY_ALERTS", "STOCK_TABLE", "WAREHOUSE_COMMANDS", "WAREHOUSE_EVENTS",
           "WAREHOUSE_COMMANDS_DLQ", "WAREHOUSE_TABLE", "ORDER_COMMANDS", "ORDER_EVENTS",
           "ORDER_COMMANDS_DLQ", "ORDER_TABLE", "INVENTORY_ANALYTICS",
           "topic_specs", "changelog_topic"]

STOCK_COMMANDS = "stock-commands"
STOCK_EVENTS = "stock-events"
STOCK_COMMANDS_DLQ = "stock-commands-dlq"
STOCK_EVENTS_DLQ = "stock-events-dlq"
# Low-stock alerts for analytics consumers and live screens (inventory.events.LowStockAlert).
INVENTORY_ALERTS = "inventory-alerts"
STOCK_TABLE = "stock"
# The capacity ledgers of warehouses (streams/warehouses/), keyed by warehouse id.
WAREHOUSE_COMMANDS = "warehouse-commands"
WAREHOUSE_EVENTS = "warehouse-events"
WAREHOUSE_COMMANDS_DLQ = "warehouse-commands-dlq"
WAREHOUSE_TABLE = "warehouse"
# Orders (streams/orders/), keyed by order id: each order's saga has a single writer.
ORDER_COMMANDS = "order-commands"
ORDER_EVENTS = "order-events"
ORDER_COMMANDS_DLQ = "order-commands-dlq"
ORDER_TABLE = "order"
# The stream analytics' window cells (streams/analytics/, inventory.analytics.WindowCell), keyed
# by "<granularity>|<window start>|<sku>|<warehouse>"; the analytics worker is its only writer.
INVENTORY_ANALYTICS = "inventory-analytics"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_topic(settings: Settings, table: str = STOCK_TABLE) -> str:
    """An area's table's changelog topic (the stock one's is the name faust gave it when it kept
    the table)."""
    return f"{settings.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n = settings.topic_partitions
    return [
        TopicSpec(STOCK_COMMANDS, n),
        TopicSpec(STOCK_EVENTS, n),
        TopicSpec(STOCK_COMMANDS_DLQ, n),
        TopicSpec(STOCK_EVENTS_DLQ, n),
        TopicSpec(INVENTORY_ALERTS, n),
        TopicSpec(WAREHOUSE_COMMANDS, n),
        TopicSpec(WAREHOUSE_EVENTS, n),
        TopicSpec(WAREHOUSE_COMMANDS_DLQ, n),
        TopicSpec(ORDER_COMMANDS, n),
        TopicSpec(ORDER_EVENTS, n),
        TopicSpec(ORDER_COMMANDS_DLQ, n),
        # Compacted: the latest cell of every window is the analytics' state for other consumers.
        TopicSpec(INVENTORY_ANALYTICS, n, {"cleanup.policy": "compact"}),
    ] + [
        # Compacted: the latest value of every key is the state; replaying it recovers the table.
        TopicSpec(changelog_topic(settings, table), n, {
            "cleanup.policy": "compact",
            "delete.retention.ms": str(int(settings.changelog_delete_retention_s * 1000)),
        })
        for table in (STOCK_TABLE, WAREHOUSE_TABLE, ORDER_TABLE)
    ]
