"""schedule paused: a repository's schedule can be paused and resumed (``repository schedule --pause``)

Revision ID: 0008_schedule_paused
Revises: 0007_labels
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_schedule_paused"
down_revision = "0007_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repository_schedules") as batch:
        batch.add_column(sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("repository_schedules") as batch:
        batch.drop_column("paused")
