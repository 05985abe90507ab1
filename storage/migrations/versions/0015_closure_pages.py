"""closure pages: what each project page gave the dependency closure, by its validators (issue 19's resync)

Revision ID: 0015_closure_pages
Revises: 0014_project_status
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_closure_pages"
down_revision = "0014_project_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "closure_pages",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("releases", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "key", name=op.f("pk_closure_pages")),
    )


def downgrade() -> None:
    op.drop_table("closure_pages")
