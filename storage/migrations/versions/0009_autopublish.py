"""autopublish: a repository's publish target, written after each sync that commits a version

Revision ID: 0009_autopublish
Revises: 0008_schedule_paused
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_autopublish"
down_revision = "0008_schedule_paused"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("autopublish", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("publish_to", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("publish_to")
        batch.drop_column("autopublish")
