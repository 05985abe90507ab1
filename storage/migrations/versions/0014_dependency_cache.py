"""dependency cache: each distribution file's Requires-Dist, by its sha256 (issue 19's metadata source)

Revision ID: 0014_dependency_cache
Revises: 0010_blocklist
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_dependency_cache"
down_revision = "0010_blocklist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dependency_cache",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("requires_dist", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(sha256) = 64 AND lower(sha256) = sha256", name=op.f("ck_dependency_cache_sha256")
        ),
        sa.CheckConstraint(
            "source IN ('metadata-file', 'wheel-range', 'wheel-download', 'sdist-pkg-info', 'unknown')",
            name=op.f("ck_dependency_cache_source"),
        ),
        sa.CheckConstraint(
            "(requires_dist IS NULL) = (source = 'unknown')",
            name=op.f("ck_dependency_cache_unknown_has_no_list"),
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_dependency_cache")),
    )


def downgrade() -> None:
    op.drop_table("dependency_cache")
