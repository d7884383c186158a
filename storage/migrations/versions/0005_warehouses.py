"""Warehouses: each warehouse's capacity ledger, and the ledger's events.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warehouses",
        sa.Column("warehouse_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("location", sa.Text, nullable=False, server_default=""),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("stored", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("stored >= 0 AND held >= 0 AND stored + held <= capacity",
                           name="warehouses_within_capacity"),
    )
    op.create_table(
        "warehouse_events",
        sa.Column("event_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("warehouse_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("sku", sa.Text),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("hold_id", sa.Text),
        sa.Column("stored_after", sa.BigInteger, nullable=False),
        sa.Column("held_after", sa.BigInteger, nullable=False),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("payload", postgresql.JSONB, nullable=False),
    )
    op.create_index("ix_warehouse_events_warehouse_seq", "warehouse_events", ["warehouse_id", "seq"])
    op.create_index("ix_warehouse_events_command", "warehouse_events", ["command_id"])


def downgrade() -> None:
    op.drop_index("ix_warehouse_events_command", table_name="warehouse_events")
    op.drop_index("ix_warehouse_events_warehouse_seq", table_name="warehouse_events")
    op.drop_table("warehouse_events")
    op.drop_table("warehouses")
