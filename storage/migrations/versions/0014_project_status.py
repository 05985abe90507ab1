"""project statuses: each version's PEP 792 statuses of its upstream's projects (archived, quarantined, ...)

Revision ID: 0014_project_status
Revises: 0013_advisories
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_project_status"
down_revision = "0013_advisories"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("normalized_name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version_added", sa.Integer(), nullable=False),
        sa.Column("version_removed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_project_statuses_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_statuses")),
    )
    op.create_index(
        "ix_project_statuses_repository_name",
        "project_statuses",
        ["repository_id", "normalized_name"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_project_statuses_repository_name", table_name="project_statuses")
    op.drop_table("project_statuses")
