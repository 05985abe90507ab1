"""repository_provenances: provenance scoped to the upstream that named it (issue 20 follow-up)

``provenances`` is keyed by (sha256, url): each upstream's object for a digest is its own row.
``repository_provenances`` records, per repository and digest, the URL the repository's own
remote named: a repository serves and advertises that provenance only. It starts empty (the old
rows do not say which repository's remote named them): a repository offers provenance again once
its next sync, or pull-through, reads the project's page. The bytes already fetched are kept.

Revision ID: 0016_repository_provenances
Revises: 0015_closure_pages
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_repository_provenances"
down_revision = "0015_closure_pages"
branch_labels = None
depends_on = None

_COLUMNS = "sha256, url, body, body_sha256, fetched"


def _provenances(*primary_key: str) -> None:
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
        sa.PrimaryKeyConstraint(*primary_key, name=op.f("pk_provenances")),
    )


def _rebuild(*primary_key: str, where: str = "") -> None:
    # Copy, drop, create with the new primary key, copy back: the same on SQLite and PostgreSQL.
    op.execute(f"CREATE TABLE provenances_0016 AS SELECT {_COLUMNS} FROM provenances")
    op.drop_table("provenances")
    _provenances(*primary_key)
    op.execute(f"INSERT INTO provenances ({_COLUMNS}) SELECT {_COLUMNS} FROM provenances_0016 p {where}")
    op.drop_table("provenances_0016")


def upgrade() -> None:
    _rebuild("sha256", "url")
    op.create_table(
        "repository_provenances",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "length(sha256) = 64 AND lower(sha256) = sha256", name=op.f("ck_repository_provenances_sha256")
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_repository_provenances_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "sha256", name=op.f("pk_repository_provenances")),
    )


def downgrade() -> None:
    op.drop_table("repository_provenances")
    # One row per digest again: the smallest URL's.
    _rebuild(
        "sha256",
        where="WHERE p.url = (SELECT MIN(q.url) FROM provenances_0016 q WHERE q.sha256 = p.sha256)",
    )
