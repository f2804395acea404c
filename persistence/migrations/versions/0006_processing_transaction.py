"""The transaction whose ``processing`` webhook used a pending order's one payment grace (issue 17), so that a
rebuild from PostgreSQL gives the engine back what it knew: the grace is used, and that transaction's
``processing`` is a duplicate.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("processing_transaction_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("processing_transaction_id")
