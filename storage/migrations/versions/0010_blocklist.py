"""repository blocklist: entries no version may serve and no sync may bring back (``repository blocklist``)

Revision ID: 0010_blocklist
Revises: 0009_autopublish
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_blocklist"
down_revision = "0009_autopublish"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repository_blocklist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_repository_blocklist_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repository_blocklist")),
        sa.UniqueConstraint("repository_id", "entry", name=op.f("uq_repository_blocklist_entry")),
    )


def downgrade() -> None:
    op.drop_table("repository_blocklist")
