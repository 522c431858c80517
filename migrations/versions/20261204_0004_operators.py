"""Operators: the operators and their audit log, merchant rotation and switch-off, resolutions,
provider status reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PAYMENT_EVENT = "refund_id IS NULL AND operator_action_id IS NULL"
_REFUND_EVENT = "refund_id IS NOT NULL AND operator_action_id IS NULL"

# The audit log is append-only: the application never changes it, and PostgreSQL refuses to.
_APPEND_ONLY = (
    """CREATE FUNCTION operator_actions_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'operator_actions is append-only';
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER operator_actions_append_only BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION operator_actions_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("email", name=op.f("uq_operators_email")),
    )
    op.create_table(
        "operator_actions",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target_type", sa.String(length=20), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_actions_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    op.create_index(op.f("ix_operator_actions_at"), "operator_actions", ["at"], unique=False)
    op.create_index(
        op.f("ix_operator_actions_operator_id"), "operator_actions", ["operator_id"], unique=False
    )
    op.create_index(
        "ix_operator_actions_target", "operator_actions", ["target_type", "target_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in _APPEND_ONLY:
            op.execute(statement)

    op.create_table(
        "provider_status_reads",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("provider_transaction_id", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_provider_status_reads_payment_id_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_provider_status_reads_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_status_reads")),
    )
    op.create_index(
        op.f("ix_provider_status_reads_payment_id"),
        "provider_status_reads",
        ["payment_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_provider_status_reads_refund_id"),
        "provider_status_reads",
        ["refund_id"],
        unique=False,
    )

    # Plain ADD COLUMNs on merchants (a copy of it would drop the tables that reference it).
    for column in (
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_api_key_hash", sa.String(length=64), nullable=True),
        sa.Column("previous_key_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_webhook_secret", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column("merchants", column)
    op.create_index(
        op.f("ix_merchants_previous_api_key_hash"),
        "merchants",
        ["previous_api_key_hash"],
        unique=False,
    )

    for table in ("payment_transitions", "refund_transitions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("operator_id", sa.String(length=40), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_operator_id_operators"),
                "operators",
                ["operator_id"],
                ["id"],
            )

    op.drop_index("uq_events_refund_type", table_name="events")
    op.drop_index("uq_events_payment_type", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operator_action_id", _AUTO_ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_events_operator_action_id_operator_actions"),
            "operator_actions",
            ["operator_action_id"],
            ["id"],
        )
    _event_indexes(_PAYMENT_EVENT, _REFUND_EVENT)
    op.create_index("uq_events_operator_action", "events", ["operator_action_id"], unique=True)


def _event_indexes(payment_event: str, refund_event: str) -> None:
    op.create_index(
        "uq_events_payment_type",
        "events",
        ["payment_id", "type"],
        unique=True,
        postgresql_where=sa.text(payment_event),
        sqlite_where=sa.text(payment_event),
    )
    op.create_index(
        "uq_events_refund_type",
        "events",
        ["refund_id", "type"],
        unique=True,
        postgresql_where=sa.text(refund_event),
        sqlite_where=sa.text(refund_event),
    )


def downgrade() -> None:
    # Resolution events cannot be kept without their audit entries.
    op.execute(
        "DELETE FROM event_delivery_attempts WHERE event_id IN "
        "(SELECT id FROM events WHERE operator_action_id IS NOT NULL)"
    )
    op.execute(
        "DELETE FROM sms_receipts WHERE event_id IN "
        "(SELECT id FROM events WHERE operator_action_id IS NOT NULL)"
    )
    op.execute("DELETE FROM events WHERE operator_action_id IS NOT NULL")
    op.drop_index("uq_events_operator_action", table_name="events")
    op.drop_index("uq_events_refund_type", table_name="events")
    op.drop_index("uq_events_payment_type", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_events_operator_action_id_operator_actions"), type_="foreignkey"
        )
        batch_op.drop_column("operator_action_id")
    _event_indexes("refund_id IS NULL", "refund_id IS NOT NULL")

    for table in ("refund_transitions", "payment_transitions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_operator_id_operators"), type_="foreignkey"
            )
            batch_op.drop_column("operator_id")

    op.drop_index(op.f("ix_merchants_previous_api_key_hash"), table_name="merchants")
    for column in (
        "previous_secret_expires_at",
        "previous_webhook_secret",
        "previous_key_expires_at",
        "previous_api_key_hash",
        "disabled_at",
    ):
        op.execute(f"ALTER TABLE merchants DROP COLUMN {column}")

    op.drop_index(op.f("ix_provider_status_reads_refund_id"), table_name="provider_status_reads")
    op.drop_index(op.f("ix_provider_status_reads_payment_id"), table_name="provider_status_reads")
    op.drop_table("provider_status_reads")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER operator_actions_append_only ON operator_actions")
        op.execute("DROP FUNCTION operator_actions_append_only()")
    op.drop_index("ix_operator_actions_target", table_name="operator_actions")
    op.drop_index(op.f("ix_operator_actions_operator_id"), table_name="operator_actions")
    op.drop_index(op.f("ix_operator_actions_at"), table_name="operator_actions")
    op.drop_table("operator_actions")
    op.drop_table("operators")
