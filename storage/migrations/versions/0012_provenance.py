"""provenances: PEP 740 provenance objects per distribution digest, outside the versions (issue 20)

Revision ID: 0012_provenance
Revises: 0011_dependency_cache
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_provenance"
down_revision = "0011_dependency_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provenances",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_sha256", sa.String(length=64), nullable=True),
        sa.Column("fetched", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "length(sha256) = 64 AND lower(sha256) = sha256", name=op.f("ck_provenances_sha256")
        ),
        sa.CheckConstraint("(body IS NULL) = (body_sha256 IS NULL)", name=op.f("ck_provenances_body_digest")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_provenances")),
    )


def downgrade() -> None:
    op.drop_table("provenances")
