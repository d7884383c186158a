"""The stream analytics' windows (streams/analytics/), as the analytics sink last persisted them.

One row per SKU, warehouse and window (an hour or a day, UTC): what the stock events of that
window imply. The analytics worker folds the events into windowed tables, publishes each cell on
``inventory-analytics`` and upserts it here; a cell only moves forward (``last_offset``, the
offset in ``stock-events`` of the last event it counts), so a redelivered cell changes nothing.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _units(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "analytics_windows",
        sa.Column("granularity", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        _units("demand_units"), _units("reserved_units"), _units("reservations"),
        _units("rejected_units"), _units("rejections"), _units("committed_units"),
        _units("released_units"), _units("received_units"), _units("removed_units"),
        _units("on_hand_open"), _units("on_hand_close"), _units("reserved_close"),
        _units("low_stock_threshold"),
        sa.Column("low_stock_close", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _units("low_stock_alerts"),
        sa.Column("unit_cost", sa.Numeric(18, 4), nullable=True),
        sa.Column("stock_value_close", sa.Numeric(24, 4), nullable=True),
        _units("events"),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("last_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("granularity", "window_start", "sku", "warehouse"),
        sa.CheckConstraint("granularity IN ('hour', 'day')", name="analytics_windows_granularity"),
    )
    op.create_index("ix_analytics_windows_sku", "analytics_windows", ["sku", "granularity", "window_start"])
    op.create_index("ix_analytics_windows_time", "analytics_windows", ["granularity", "window_start"])


def downgrade() -> None:
    op.drop_table("analytics_windows")
