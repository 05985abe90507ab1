"""serving: pull-through remote of a repository, pull-through cache, stored core metadata

Revision ID: 0002_serve
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_serve"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("pull_through_remote_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_repositories_pull_through_remote_id_remotes"),
            "remotes",
            ["pull_through_remote_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "pull_through_packages",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("normalized_name", sa.Text(), nullable=False),
        sa.Column("remote_id", sa.Integer(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"],
            name=op.f("fk_pull_through_packages_package_id_packages"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["remote_id"], ["remotes.id"],
            name=op.f("fk_pull_through_packages_remote_id_remotes"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repositories.id"],
            name=op.f("fk_pull_through_packages_repository_id_repositories"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "package_id", name=op.f("pk_pull_through_packages")),
    )  # fmt: skip
    op.create_index(
        "ix_pull_through_repo_name", "pull_through_packages", ["repository_id", "normalized_name"]
    )
    op.create_table(
        "core_metadata",
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.CheckConstraint("source IN ('upstream', 'wheel')", name=op.f("ck_core_metadata_source")),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"],
            name=op.f("fk_core_metadata_package_id_packages"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["artifacts.sha256"], name=op.f("fk_core_metadata_sha256_artifacts"),
        ),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_core_metadata")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("core_metadata")
    op.drop_index("ix_pull_through_repo_name", table_name="pull_through_packages")
    op.drop_table("pull_through_packages")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_constraint(op.f("fk_repositories_pull_through_remote_id_remotes"), type_="foreignkey")
        batch.drop_column("pull_through_remote_id")
