"""Console: indexes for the payments list, its search box and the overview

Measured with ``python -m bench.console`` on 1,000,000 payments (BENCHMARKS.md, "Console on
1,000,000 payments"): without them the newest-first list, its date range and the overview's
time windows read the whole table.

Plain CREATE INDEX (as every migration here): on PostgreSQL it blocks writes to payments while
each index builds, a few seconds per index at a million rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_TRANSACTION_ID = "provider_transaction_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        # Newest first, keyset pages on (created_at, id); date ranges; the overview's windows.
        batch_op.create_index("ix_payments_created", ["created_at", "id"], unique=False)
        # The search box: an order id (across merchants) or a provider's transaction id.
        batch_op.create_index("ix_payments_order_id", ["order_id"], unique=False)
        batch_op.create_index(
            "ix_payments_provider_transaction_id",
            ["provider_transaction_id"],
            unique=False,
            postgresql_where=sa.text(_HAS_TRANSACTION_ID),
            sqlite_where=sa.text(_HAS_TRANSACTION_ID),
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_payments_provider_transaction_id",
            postgresql_where=sa.text(_HAS_TRANSACTION_ID),
            sqlite_where=sa.text(_HAS_TRANSACTION_ID),
        )
        batch_op.drop_index("ix_payments_order_id")
        batch_op.drop_index("ix_payments_created")
