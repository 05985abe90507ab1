"""incremental sync: project serials, filter fingerprints, a sync's touched projects

Revision ID: 0003_serials
Revises: 0002_serve
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_serials"
down_revision = "0002_serve"
branch_labels = None
depends_on = None


def _keys() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "project_serials",
        *_keys(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_project_serials_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["remote_id"],
            ["remotes.id"],
            name=op.f("fk_project_serials_remote_id_remotes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "remote_id", "name", name=op.f("pk_project_serials")),
    )
    op.create_table(
        "sync_filter_states",
        *_keys(),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_sync_filter_states_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["remote_id"],
            ["remotes.id"],
            name=op.f("fk_sync_filter_states_remote_id_remotes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "remote_id", name=op.f("pk_sync_filter_states")),
    )
    op.create_table(
        "sync_projects",
        sa.Column("sync_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('fetched', 'gone', 'stale')", name=op.f("ck_sync_projects_state")),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_sync_projects_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sync_id", "name", name=op.f("pk_sync_projects")),
    )
    op.create_index("ix_sync_projects_repository", "sync_projects", ["repository_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_projects_repository", table_name="sync_projects")
    op.drop_table("sync_projects")
    op.drop_table("sync_filter_states")
    op.drop_table("project_serials")
