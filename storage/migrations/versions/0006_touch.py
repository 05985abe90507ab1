"""touch: when a sync last reused a package or artifact, so cleanup never races a sync

Revision ID: 0006_touch
Revises: 0005_locks
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_touch"
down_revision = "0005_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("packages", "artifacts"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("touched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ("packages", "artifacts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("touched_at")
