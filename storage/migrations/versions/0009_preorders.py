"""Pre-orders: a level's units announced as incoming, those of them pre-ordered, and when they are
expected; a reservation's units that have not arrived; an order's permission to pre-order.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inventory_levels", sa.Column("incoming", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("inventory_levels", sa.Column("preordered", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("inventory_levels", sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("levels_preorders_within_incoming", "inventory_levels",
                               "preordered >= 0 AND incoming >= preordered")
    op.add_column("reservations", sa.Column("awaiting", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("allow_preorders", sa.Boolean, nullable=False,
                                      server_default=sa.text("false")))


def downgrade() -> None:
    op.drop_column("orders", "allow_preorders")
    op.drop_column("reservations", "awaiting")
    op.drop_constraint("levels_preorders_within_incoming", "inventory_levels", type_="check")
    op.drop_column("inventory_levels", "expected_at")
    op.drop_column("inventory_levels", "preordered")
    op.drop_column("inventory_levels", "incoming")
