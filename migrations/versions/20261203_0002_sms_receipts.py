"""SMS receipts: per-merchant switch and template, and the receipts table

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, not batch mode: batch would rebuild merchants, which SQLite refuses while
    # payments reference it and foreign keys are on. The server default gives existing
    # merchants "off".
    op.add_column(
        "merchants",
        sa.Column("sms_receipts", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("merchants", sa.Column("sms_template", sa.String(length=160), nullable=True))
    op.add_column(
        "merchants", sa.Column("sms_receipts_since", sa.DateTime(timezone=True), nullable=True)
    )

    op.create_table(
        "sms_receipts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("to_number", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_message_id", sa.String(length=100), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("delivery_status", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_sms_receipts_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_sms_receipts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_sms_receipts_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_receipts")),
        sa.UniqueConstraint("event_id", name=op.f("uq_sms_receipts_event_id")),
        sa.UniqueConstraint(
            "provider_message_id", name=op.f("uq_sms_receipts_provider_message_id")
        ),
    )
    with op.batch_alter_table("sms_receipts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_receipts_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sms_receipts_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_receipts_payment_id"))
        batch_op.drop_index("ix_sms_receipts_status_next_attempt")
    op.drop_table("sms_receipts")

    # Plain DROP COLUMNs (SQLite has them since 3.35), for the reason given in upgrade().
    for column in ("sms_receipts_since", "sms_template", "sms_receipts"):
        op.execute(f"ALTER TABLE merchants DROP COLUMN {column}")
