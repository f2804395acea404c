"""The catalog, orders and payments.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the model types: a migration must not change when the models do.
UTC_TIME = sa.DateTime(timezone=True)
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("max_per_customer", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sale_starts_at", UTC_TIME, nullable=True),
        sa.Column("sale_ends_at", UTC_TIME, nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_products_price_cents")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock")),
        sa.CheckConstraint("max_per_customer >= 0", name=op.f("ck_products_max_per_customer")),
        sa.CheckConstraint(
            "sale_ends_at IS NULL OR sale_starts_at IS NULL OR sale_ends_at > sale_starts_at",
            name=op.f("ck_products_window"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.String(length=48), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("paid_at", UTC_TIME, nullable=True),
        sa.Column("cancelled_at", UTC_TIME, nullable=True),
        sa.Column("cancel_reason", sa.String(length=32), nullable=True),
        sa.Column("transaction_id", sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'paid', 'cancelled')", name=op.f("ck_orders_status")),
        sa.CheckConstraint(
            "cancel_reason IS NULL OR cancel_reason IN ('payment_failed', 'expired', 'cancelled')",
            name=op.f("ck_orders_cancel_reason"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity")),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_orders_amount_cents")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_orders_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_orders_hold_id")),
    )
    op.create_index(op.f("ix_orders_product_id_status"), "orders", ["product_id", "status"])
    op.create_index(op.f("ix_orders_customer_id"), "orders", ["customer_id"])
    op.create_table(
        "payments",
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=48), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("payload", PAYLOAD, nullable=True),
        sa.CheckConstraint("status IN ('success', 'failed')", name=op.f("ck_payments_status")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_payments_order_id_orders")),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_order_id"), "payments", ["order_id"])


def downgrade() -> None:
    op.drop_table("payments")
    op.drop_table("orders")
    op.drop_table("products")
