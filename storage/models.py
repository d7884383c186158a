"""The read model's tables (SQLAlchemy Core). Migrations in ``storage/migrations`` create them."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

__all__ = ["metadata", "products", "inventory_levels", "inventory_transactions", "reservations",
           "warehouses", "warehouse_events", "NOTIFY_CHANNEL", "orders", "order_events", "transfers",
           "api_users", "api_keys", "analytics_windows"]

#: The sink NOTIFYs this channel with every event it persisted, inside the writing transaction,
#: so a listener learns of an event only once it is durable in the read model. Warehouse ledger
#: events share it, flagged ``"source": "warehouse"``, so one LISTEN sees a saga's every step.
NOTIFY_CHANNEL = "stock_events"

metadata = MetaData()

products = Table(
    "products", metadata,
    Column("sku", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("category", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by_command", Text, nullable=False),
    Column("parent_sku", Text, nullable=True),  # a variant's product
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # A bundle's: units of each component SKU per bundle ({} for a product that holds stock).
    Column("components", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("unit_cost", Numeric(18, 4), nullable=True, doc="what one unit costs; NULL: unknown"),
    Index("ix_products_parent", "parent_sku"),
)

inventory_levels = Table(
    "inventory_levels", metadata,
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False, doc="the SKU's seq of the last event applied"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("low_stock_threshold", BigInteger, nullable=False, server_default="0"),
    Column("incoming", BigInteger, nullable=False, server_default="0", doc="announced, not arrived yet"),
    Column("preordered", BigInteger, nullable=False, server_default="0", doc="of incoming, held by pre-orders"),
    Column("expected_at", DateTime(timezone=True), nullable=True, doc="when the incoming units are expected"),
    PrimaryKeyConstraint("sku", "warehouse"),
    Index("ix_levels_low_stock", "warehouse", "sku",
          postgresql_where=text("low_stock_threshold > 0 AND on_hand - reserved < low_stock_threshold")),
    CheckConstraint("reserved >= 0 AND on_hand >= reserved", name="levels_never_oversold"),
    CheckConstraint("preordered >= 0 AND incoming >= preordered", name="levels_preorders_within_incoming"),
)

inventory_transactions = Table(
    "inventory_transactions", metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("command_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("on_hand_delta", BigInteger, nullable=False),
    Column("reserved_delta", BigInteger, nullable=False),
    Column("on_hand_after", BigInteger, nullable=False),
    Column("reserved_after", BigInteger, nullable=False),
    Column("reason", Text),
    Column("reservation_id", Text),
    Column("sender", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    # The event's place in the ledger, increasing in commit order (storage/sink.py): the offset
    # live subscribers resume from.
    Column("position", BigInteger, nullable=False,
           server_default=text("nextval('inventory_transactions_position_seq')")),
    # The rest of the level after the event (NULL for events persisted before migration 0011).
    Column("incoming_after", BigInteger),
    Column("preordered_after", BigInteger),
    Column("expected_at_after", DateTime(timezone=True)),
    Column("low_stock_threshold_after", BigInteger),
    Column("low_stock", Boolean),
    Index("ix_transactions_sku_seq", "sku", "seq"),
    Index("ix_transactions_command", "command_id"),
    Index("ux_transactions_position", "position", unique=True),
    Index("ix_transactions_sku_time", "sku", "occurred_at"),
)

reservations = Table(
    "reservations", metadata,
    Column("reservation_id", Text, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),  # NULL: never
    Column("awaiting", BigInteger, nullable=False, server_default="0",
           doc="of quantity, a pending pre-order's units that have not arrived"),
    Index("ix_reservations_sku", "sku"),
)

# A warehouse's capacity ledger (streams/warehouses/), as of its last event applied.
warehouses = Table(
    "warehouses", metadata,
    Column("warehouse_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("location", Text, nullable=False, server_default=""),
    Column("capacity", BigInteger, nullable=False),
    Column("stored", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False, doc="the ledger's seq of the last event applied"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("stored >= 0 AND held >= 0 AND stored + held <= capacity",
                    name="warehouses_within_capacity"),
)

warehouse_events = Table(
    "warehouse_events", metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("command_id", Text, nullable=False),
    Column("warehouse_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sku", Text),
    Column("quantity", BigInteger, nullable=False),
    Column("hold_id", Text),
    Column("stored_after", BigInteger, nullable=False),
    Column("held_after", BigInteger, nullable=False),
    Column("capacity", BigInteger, nullable=False),
    Column("reason", Text),
    Column("detail", Text),
    Column("sender", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    Index("ix_warehouse_events_warehouse_seq", "warehouse_id", "seq"),
    Index("ix_warehouse_events_command", "command_id"),
)

orders = Table(
    "orders", metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("preferred_warehouse", Text, nullable=False, server_default=""),
    Column("allow_backorders", Boolean, nullable=False, server_default=text("false")),
    Column("allow_preorders", Boolean, nullable=False, server_default=text("false")),
    Column("strategy", Text, nullable=False),
    Column("lines", JSONB, nullable=False, doc="each line: sku, quantity, state and its allocation"),
    Column("version", BigInteger, nullable=False, doc="the order's seq of the last event applied"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_orders_customer", "customer"),
    Index("ix_orders_status", "status"),
)

order_events = Table(
    "order_events", metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("command_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("detail", Text),
    Column("sender", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    Index("ix_order_events_order_seq", "order_id", "seq"),
    Index("ix_order_events_command", "command_id"),
)

transfers = Table(
    "transfers", metadata,
    Column("transfer_id", Text, primary_key=True),
    Column("sku", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("state", Text, nullable=False, doc="IN_TRANSIT, then ARRIVED"),
    Column("version", BigInteger, nullable=False, doc="the SKU's seq of the last event applied"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_transfers_sku_state", "sku", "state"),
)

# The API's credentials (api/security.py): not stock, so not in the log; PostgreSQL is their store.
api_users = Table(
    "api_users", metadata,
    Column("username", Text, primary_key=True),
    Column("password_hash", Text, nullable=False, doc="argon2id (argon2-cffi)"),
    Column("role", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="api_users_role"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    # A key's secret is 32 random bytes, so a fast hash is as safe as a slow one (nothing to
    # guess) and costs no 50 ms per request; a password, chosen by a person, gets argon2.
    Column("secret_sha256", Text, nullable=False),
    Column("rate_limit", Text, nullable=True, doc="its own limit; NULL: the default"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="api_keys_role"),
)


def _units(name: str) -> Column:
    return Column(name, BigInteger, nullable=False, server_default="0")


# The stream analytics' cells (streams/analytics/): one per SKU, warehouse and hour or day (UTC).
analytics_windows = Table(
    "analytics_windows", metadata,
    Column("granularity", Text, nullable=False, doc="'hour' or 'day'"),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("warehouse", Text, nullable=False, doc="'' for an order line's events (no warehouse)"),
    _units("demand_units"), _units("reserved_units"), _units("reservations"),
    _units("rejected_units"), _units("rejections"), _units("committed_units"),
    _units("released_units"), _units("received_units"), _units("removed_units"),
    _units("on_hand_open"), _units("on_hand_close"), _units("reserved_close"),
    _units("low_stock_threshold"),
    Column("low_stock_close", Boolean, nullable=False, server_default=text("false")),
    _units("low_stock_alerts"),
    Column("unit_cost", Numeric(18, 4), nullable=True),
    Column("stock_value_close", Numeric(24, 4), nullable=True),
    _units("events"),
    Column("source_partition", Integer, nullable=False),
    Column("last_offset", BigInteger, nullable=False, doc="offset in stock-events of the last event counted"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("granularity", "window_start", "sku", "warehouse"),
    CheckConstraint("granularity IN ('hour', 'day')", name="analytics_windows_granularity"),
    Index("ix_analytics_windows_sku", "sku", "granularity", "window_start"),
    Index("ix_analytics_windows_time", "granularity", "window_start"),
)
