"""Refund requests, the merchant-event outbox, and revived orders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the model types: a migration must not change when the models do.
UTC_TIME = sa.DateTime(timezone=True)
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("orders", sa.Column("revived", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "refund_requests",
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=48), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("paid_by", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.Column("confirmed_at", UTC_TIME, nullable=True),
        sa.Column("confirmation", PAYLOAD, nullable=True),
        sa.CheckConstraint("status IN ('requested', 'sent', 'confirmed')", name=op.f("ck_refund_requests_status")),
        sa.CheckConstraint(
            "reason IN ('already_paid', 'expired', 'payment_failed', 'cancelled')",
            name=op.f("ck_refund_requests_reason"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_refund_requests_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["payments.transaction_id"], name=op.f("fk_refund_requests_transaction_id_payments")
        ),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_refund_requests")),
    )
    op.create_index(op.f("ix_refund_requests_order_id"), "refund_requests", ["order_id"])
    op.create_index(op.f("ix_refund_requests_status_requested_at"), "refund_requests", ["status", "requested_at"])
    # Every success flagged before this table is a refund still to make.
    op.execute(
        """
        INSERT INTO refund_requests (transaction_id, order_id, product_id, customer_id, amount_cents, reason,
                                     paid_by, status, requested_at)
        SELECT p.transaction_id, p.order_id, o.product_id, o.customer_id, o.amount_cents,
               CASE WHEN o.status = 'paid' THEN 'already_paid' ELSE COALESCE(o.cancel_reason, 'cancelled') END,
               CASE WHEN o.status = 'paid' THEN o.transaction_id END,
               'requested', p.received_at
        FROM payments p JOIN orders o ON o.id = p.order_id
        WHERE p.refund_required
        """
    )
    op.create_table(
        "merchant_events",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("deadline_at", UTC_TIME, nullable=False),
        sa.Column("leased_until", UTC_TIME, nullable=True),
        sa.Column("delivered_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f("ck_merchant_events_status")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_merchant_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_merchant_events_dedup_key")),
        sa.UniqueConstraint("id", name=op.f("uq_merchant_events_id")),
    )
    op.create_index(op.f("ix_merchant_events_status_next_attempt_at"), "merchant_events", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_merchant_events_stream_seq"), "merchant_events", ["stream", "seq"])


def downgrade() -> None:
    op.drop_table("merchant_events")
    op.drop_table("refund_requests")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("revived")
