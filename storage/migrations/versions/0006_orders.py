"""Orders: each order's saga as its last snapshot, and the order's events.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("customer", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("preferred_warehouse", sa.Text, nullable=False, server_default=""),
        sa.Column("allow_backorders", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("strategy", sa.Text, nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_orders_customer", "orders", ["customer"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "order_events",
        sa.Column("event_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("payload", postgresql.JSONB, nullable=False),
    )
    op.create_index("ix_order_events_order_seq", "order_events", ["order_id", "seq"])
    op.create_index("ix_order_events_command", "order_events", ["command_id"])


def downgrade() -> None:
    op.drop_index("ix_order_events_command", table_name="order_events")
    op.drop_index("ix_order_events_order_seq", table_name="order_events")
    op.drop_table("order_events")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_index("ix_orders_customer", table_name="orders")
    op.drop_table("orders")
