"""Each inventory level carries its low-stock threshold (0: none), so low stock is one query.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inventory_levels", sa.Column("low_stock_threshold", sa.BigInteger, nullable=False,
                                                server_default="0"))
    # Only the levels under their threshold: the low-stock list reads this small index.
    op.create_index("ix_levels_low_stock", "inventory_levels", ["warehouse", "sku"],
                    postgresql_where=sa.text("low_stock_threshold > 0 "
                                             "AND on_hand - reserved < low_stock_threshold"))


def downgrade() -> None:
    op.drop_index("ix_levels_low_stock", table_name="inventory_levels")
    op.drop_column("inventory_levels", "low_stock_threshold")
