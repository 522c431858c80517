"""Refunds: the refunds table and its audit trail, the payment's refunded amount, refund events

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=160), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("provider_reference", sa.String(length=64), nullable=False),
        sa.Column("provider_transaction_id", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("failure_message", sa.String(length=255), nullable=True),
        sa.Column("reported_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("reported_currency", sa.String(length=3), nullable=True),
        sa.Column("initiation_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("check_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_refunds_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("provider_reference", name=op.f("uq_refunds_provider_reference")),
    )
    op.create_index(
        "ix_refunds_merchant_created", "refunds", ["merchant_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_refunds_status_next_check", "refunds", ["status", "next_check_at"], unique=False
    )
    op.create_index(op.f("ix_refunds_payment_id"), "refunds", ["payment_id"], unique=False)

    op.create_table(
        "refund_transitions",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("refund_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_refund_transitions_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_transitions")),
    )
    op.create_index(
        op.f("ix_refund_transitions_refund_id"), "refund_transitions", ["refund_id"], unique=False
    )

    # A plain ADD COLUMN (no table copy); existing payments have refunded nothing.
    op.add_column(
        "payments",
        sa.Column("amount_refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
    )

    # Several refunds of one payment each get their own refund.* events: the one-event-per-type
    # rule moves from (payment, type) to (payment, type) for payment events and (refund, type)
    # for refund events. SQLite drops a table constraint by copying the table (batch mode).
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_events_refund_id_refunds"), "refunds", ["refund_id"], ["id"]
        )
        batch_op.drop_constraint("uq_events_payment_type", type_="unique")
    op.create_index(
        "uq_events_payment_type",
        "events",
        ["payment_id", "type"],
        unique=True,
        postgresql_where=sa.text("refund_id IS NULL"),
        sqlite_where=sa.text("refund_id IS NULL"),
    )
    op.create_index(
        "uq_events_refund_type",
        "events",
        ["refund_id", "type"],
        unique=True,
        postgresql_where=sa.text("refund_id IS NOT NULL"),
        sqlite_where=sa.text("refund_id IS NOT NULL"),
    )

    with op.batch_alter_table("provider_callbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_provider_callbacks_refund_id_refunds"), "refunds", ["refund_id"], ["id"]
        )
        batch_op.create_index(
            batch_op.f("ix_provider_callbacks_refund_id"), ["refund_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_callbacks_refund_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_provider_callbacks_refund_id_refunds"), type_="foreignkey"
        )
        batch_op.drop_column("refund_id")

    # Refund events cannot be kept without their refunds.
    op.execute(
        "DELETE FROM event_delivery_attempts WHERE event_id IN "
        "(SELECT id FROM events WHERE refund_id IS NOT NULL)"
    )
    op.execute(
        "DELETE FROM sms_receipts WHERE event_id IN "
        "(SELECT id FROM events WHERE refund_id IS NOT NULL)"
    )
    op.execute("DELETE FROM events WHERE refund_id IS NOT NULL")
    op.drop_index("uq_events_refund_type", table_name="events")
    op.drop_index("uq_events_payment_type", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_events_refund_id_refunds"), type_="foreignkey")
        batch_op.drop_column("refund_id")
        batch_op.create_unique_constraint("uq_events_payment_type", ["payment_id", "type"])

    op.execute("ALTER TABLE payments DROP COLUMN amount_refunded_minor")

    op.drop_index(op.f("ix_refund_transitions_refund_id"), table_name="refund_transitions")
    op.drop_table("refund_transitions")
    op.drop_index(op.f("ix_refunds_payment_id"), table_name="refunds")
    op.drop_index("ix_refunds_status_next_check", table_name="refunds")
    op.drop_index("ix_refunds_merchant_created", table_name="refunds")
    op.drop_table("refunds")
