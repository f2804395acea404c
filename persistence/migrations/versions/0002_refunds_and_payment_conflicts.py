"""Payments flagged for refund, and payment conflicts kept rather than dropped.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the model types: a migration must not change when the models do.
UTC_TIME = sa.DateTime(timezone=True)
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("payments", sa.Column("refund_required", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Before this column a success that was not applied always found its order cancelled: a refund.
    payments = sa.table("payments", sa.column("status"), sa.column("applied"), sa.column("refund_required"))
    op.execute(
        payments.update()
        .where(payments.c.status == "success", payments.c.applied == sa.false())
        .values(refund_required=True)
    )
    op.create_table(
        "payment_conflicts",
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=48), nullable=False),
        sa.Column("recorded_order_id", sa.String(length=48), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("detected_at", UTC_TIME, nullable=False),
        sa.Column("payload", PAYLOAD, nullable=True),
        sa.Column("resolved_at", UTC_TIME, nullable=True),
        sa.CheckConstraint("status IN ('success', 'failed')", name=op.f("ck_payment_conflicts_status")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_payment_conflicts_order_id_orders")),
        sa.PrimaryKeyConstraint("transaction_id", "order_id", name=op.f("pk_payment_conflicts")),
    )
    op.create_index(
        op.f("ix_payment_conflicts_product_id_resolved_at"), "payment_conflicts", ["product_id", "resolved_at"]
    )


def downgrade() -> None:
    op.drop_table("payment_conflicts")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("refund_required")
