"""The read model: products, inventory levels, the ledger, reservations.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("category", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_command", sa.Text, nullable=False),
    )
    op.create_table(
        "inventory_levels",
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("on_hand", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sku", "warehouse"),
        sa.CheckConstraint("reserved >= 0 AND on_hand >= reserved", name="levels_never_oversold"),
    )
    op.create_table(
        "inventory_transactions",
        sa.Column("event_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("on_hand_delta", sa.BigInteger, nullable=False),
        sa.Column("reserved_delta", sa.BigInteger, nullable=False),
        sa.Column("on_hand_after", sa.BigInteger, nullable=False),
        sa.Column("reserved_after", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("reservation_id", sa.Text),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("payload", postgresql.JSONB, nullable=False),
    )
    op.create_index("ix_transactions_sku_seq", "inventory_transactions", ["sku", "seq"])
    op.create_index("ix_transactions_command", "inventory_transactions", ["command_id"])
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reservations_sku", "reservations", ["sku"])


def downgrade() -> None:
    op.drop_table("reservations")
    op.drop_table("inventory_transactions")
    op.drop_table("inventory_levels")
    op.drop_table("products")
