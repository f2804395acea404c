"""An index on ``orders.processing_transaction_id``: a webhook whose transaction id Redis no longer knows asks which
order that transaction's ``processing`` held (api/settlement.py), so the id stays bound to that order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_orders_processing_transaction_id"), "orders", ["processing_transaction_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_orders_processing_transaction_id"), table_name="orders")
