"""Saleor payment app: the installations

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saleor_installations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("saleor_api_url", sa.String(length=2048), nullable=False),
        sa.Column("app_id", sa.String(length=255), nullable=False),
        sa.Column("app_token_encrypted", sa.Text(), nullable=False),
        sa.Column("app_token_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "jwks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("jwks_fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id"),
        sa.UniqueConstraint("saleor_api_url"),
    )


def downgrade() -> None:
    op.drop_table("saleor_installations")
