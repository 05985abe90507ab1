"""OSV advisories (``mirrorflow advisories import``) and the remote's ``block_advisories``

Revision ID: 0013_advisories
Revises: 0012_provenance
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_advisories"
down_revision = "0012_provenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.Text(), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("affected", sa.JSON(), nullable=False),
        sa.Column("imported", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisories")),
        sa.UniqueConstraint("advisory_id", name=op.f("uq_advisories_advisory_id")),
    )
    op.create_table(
        "advisory_projects",
        sa.Column("advisory_pk", sa.Integer(), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["advisory_pk"],
            ["advisories.id"],
            name=op.f("fk_advisory_projects_advisory_pk_advisories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("advisory_pk", "project", name=op.f("pk_advisory_projects")),
    )
    op.create_index(op.f("ix_advisory_projects_project"), "advisory_projects", ["project"])
    # Existing remotes block malicious packages as soon as advisories are imported (the default).
    with op.batch_alter_table("remotes") as batch:
        batch.add_column(
            sa.Column("block_advisories", sa.JSON(), nullable=False, server_default=sa.text("'[\"MAL\"]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("remotes") as batch:
        batch.drop_column("block_advisories")
    op.drop_index(op.f("ix_advisory_projects_project"), table_name="advisory_projects")
    op.drop_table("advisory_projects")
    op.drop_table("advisories")
