"""closure page scope: which repository and remote a closure page row serves, so it can be pruned

``closure_pages`` rows gain ``repository_id`` (deleted with the repository) and ``remote`` (the
remote's name, ``(inline)`` for an inline remote): a remote deleted or given another URL takes its
rows with it, and a complete closure of a repository from a remote removes that scope's rows it did
not use. The table is a cache (a row only saves a page fetch), so it starts empty: the next closure
sync fetches each page once and remembers it again.

Revision ID: 0017_closure_page_scope
Revises: 0016_repository_provenances
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_closure_page_scope"
down_revision = "0016_repository_provenances"
branch_labels = None
depends_on = None


def _closure_pages(*scope: sa.Column[int] | sa.Column[str]) -> None:
    op.create_table(
        "closure_pages",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        *scope,
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("releases", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "key", name=op.f("pk_closure_pages")),
    )


def upgrade() -> None:
    op.drop_table("closure_pages")
    _closure_pages(
        sa.Column(
            "repository_id",
            sa.Integer(),
            sa.ForeignKey(
                "repositories.id",
                name=op.f("fk_closure_pages_repository_id_repositories"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("remote", sa.Text(), nullable=False),
    )
    op.create_index(op.f("ix_closure_pages_scope"), "closure_pages", ["repository_id", "remote"])


def downgrade() -> None:
    op.drop_index(op.f("ix_closure_pages_scope"), table_name="closure_pages")
    op.drop_table("closure_pages")
    _closure_pages()
