"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-30 11:34:15.763631
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("merchant_id", "key", name="uq_idempotency_merchant_key"),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_prefix", sa.String(length=16), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("webhook_secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_merchants_api_key_hash")),
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("phone_number", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=160), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
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
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payments_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("provider_reference", name=op.f("uq_payments_provider_reference")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payments_merchant_created", ["merchant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_payments_status_next_check", ["status", "next_check_at"], unique=False
        )
        batch_op.create_index(
            "uq_payments_live_order",
            ["merchant_id", "order_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('pending', 'successful', 'needs_review')"),
            sqlite_where=sa.text("status IN ('pending', 'successful', 'needs_review')"),
        )

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("delivery_status", sa.String(length=20), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_events_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_events_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("payment_id", "type", name="uq_events_payment_type"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_delivery_status"), ["delivery_status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_events_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "payment_transitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_transitions_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_transitions")),
    )
    with op.batch_alter_table("payment_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_transitions_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "provider_callbacks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_provider_callbacks_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_callbacks")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_provider_callbacks_dedupe_key")),
    )
    with op.batch_alter_table("provider_callbacks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_callbacks_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "event_delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_delivery_attempts_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery_attempts")),
    )
    with op.batch_alter_table("event_delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_delivery_attempts_event_id"), ["event_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event_delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_delivery_attempts_event_id"))

    op.drop_table("event_delivery_attempts")
    with op.batch_alter_table("provider_callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_callbacks_payment_id"))

    op.drop_table("provider_callbacks")
    with op.batch_alter_table("payment_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_transitions_payment_id"))

    op.drop_table("payment_transitions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_payment_id"))
        batch_op.drop_index(batch_op.f("ix_events_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_events_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_events_delivery_status"))

    op.drop_table("events")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_payments_live_order",
            postgresql_where=sa.text("status IN ('pending', 'successful', 'needs_review')"),
            sqlite_where=sa.text("status IN ('pending', 'successful', 'needs_review')"),
        )
        batch_op.drop_index("ix_payments_status_next_check")
        batch_op.drop_index("ix_payments_merchant_created")

    op.drop_table("payments")
    op.drop_table("server_secrets")
    op.drop_table("merchants")
    op.drop_table("idempotency_records")
