"""The ledger's positions and full levels per event, and a product's unit cost.

- ``inventory_transactions.position``: every stock event's place in the ledger, increasing in
  commit order (the sink assigns it under a lock, storage/sink.py). It is the offset a live
  subscriber resumes from (WebSocket, gRPC): events after it are exactly the ones it missed.
- ``incoming_after``, ``preordered_after``, ``expected_at_after``, ``low_stock_threshold_after``,
  ``low_stock``: the rest of the warehouse's level after the event (on-hand and reserved were
  there already), so a level at any past moment is one row of the ledger (as-of reads). NULL for
  the events persisted before this revision: the ledger does not know them.
- ``products.unit_cost``: what one unit costs, for the stock value of analytics (NULL: unknown).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SEQUENCE = "inventory_transactions_position_seq"


def upgrade() -> None:
    op.execute(f"CREATE SEQUENCE {_SEQUENCE} AS bigint")
    op.add_column("inventory_transactions", sa.Column("position", sa.BigInteger, nullable=True))
    # The events already there get positions in the order they were recorded.
    op.execute("""
        UPDATE inventory_transactions t SET position = ordered.n
        FROM (SELECT event_id, row_number() OVER (ORDER BY recorded_at, sku, seq, event_id) AS n
              FROM inventory_transactions) AS ordered
        WHERE t.event_id = ordered.event_id""")
    op.execute(f"SELECT setval('{_SEQUENCE}', COALESCE((SELECT max(position) FROM inventory_transactions), 0) + 1, false)")
    op.execute(f"ALTER SEQUENCE {_SEQUENCE} OWNED BY inventory_transactions.position")
    op.alter_column("inventory_transactions", "position", nullable=False,
                    server_default=sa.text(f"nextval('{_SEQUENCE}')"))
    op.create_index("ux_transactions_position", "inventory_transactions", ["position"], unique=True)
    for name, type_ in (("incoming_after", sa.BigInteger), ("preordered_after", sa.BigInteger),
                        ("expected_at_after", sa.DateTime(timezone=True)),
                        ("low_stock_threshold_after", sa.BigInteger), ("low_stock", sa.Boolean)):
        op.add_column("inventory_transactions", sa.Column(name, type_, nullable=True))
    # As-of reads find a level's last event at or before a moment.
    op.create_index("ix_transactions_sku_time", "inventory_transactions", ["sku", "occurred_at"])
    op.add_column("products", sa.Column("unit_cost", sa.Numeric(18, 4), nullable=True))


def downgrade() -> None:
    op.drop_column("products", "unit_cost")
    op.drop_index("ix_transactions_sku_time", "inventory_transactions")
    for name in ("low_stock", "low_stock_threshold_after", "expected_at_after", "preordered_after",
                 "incoming_after"):
        op.drop_column("inventory_transactions", name)
    op.drop_index("ux_transactions_position", "inventory_transactions")
    op.drop_column("inventory_transactions", "position")  # drops its owned sequence too
