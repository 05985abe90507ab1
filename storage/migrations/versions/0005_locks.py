"""sync locks and repository schedules

Revision ID: 0005_locks
Revises: 0004_verify
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_locks"
down_revision = "0004_verify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_locks",
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("token", sa.String(length=36), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repository", name=op.f("pk_sync_locks")),
    )
    op.create_table(
        "repository_schedules",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("remote_name", sa.String(length=255), nullable=True),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("mirror", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(cron IS NULL) <> (interval_seconds IS NULL) AND "
            "(interval_seconds IS NULL OR interval_seconds > 0)",
            name=op.f("ck_repository_schedules_one_of"),
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_repository_schedules_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", name=op.f("pk_repository_schedules")),
    )


def downgrade() -> None:
    op.drop_table("repository_schedules")
    op.drop_table("sync_locks")
