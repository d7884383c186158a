"""Variants: a product may belong to another (its parent) and carry attributes.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("parent_sku", sa.Text, nullable=True))
    op.add_column("products", sa.Column("attributes", postgresql.JSONB, nullable=False,
                                        server_default=sa.text("'{}'::jsonb")))
    op.create_index("ix_products_parent", "products", ["parent_sku"])


def downgrade() -> None:
    op.drop_index("ix_products_parent", table_name="products")
    op.drop_column("products", "attributes")
    op.drop_column("products", "parent_sku")
