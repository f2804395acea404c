"""A product's waiting room: on or off, its admission rate cap and its admission TTL (docs/waiting-room.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("waiting_room", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("admit_per_second", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("admission_ttl_seconds", sa.BigInteger(), server_default="60", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("admission_ttl_seconds")
        batch.drop_column("admit_per_second")
        batch.drop_column("waiting_room")
