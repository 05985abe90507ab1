"""labels and package uuids: Pulp's pulp_labels on repositories and remotes, an href for each package

Revision ID: 0007_labels
Revises: 0006_touch
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mirrorflow.storage.content import package_uuid

revision = "0007_labels"
down_revision = "0006_touch"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    for table in ("repositories", "remotes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("labels", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("uuid", sa.String(length=36), nullable=True))
    _fill_package_uuids(op.get_bind())
    with op.batch_alter_table("packages") as batch:
        batch.alter_column("uuid", existing_type=sa.String(length=36), nullable=False)
        batch.create_unique_constraint(op.f("uq_packages_uuid"), ["uuid"])


def _fill_package_uuids(connection: sa.Connection) -> None:
    """Give every existing package the uuid a sync would give it now (derived, so stable)."""
    packages = sa.table(
        "packages", sa.column("id", sa.Integer), sa.column("filename", sa.Text), sa.column("sha256", sa.Text),
        sa.column("uuid", sa.String),
    )  # fmt: skip
    update = packages.update().where(packages.c.id == sa.bindparam("row_id")).values(uuid=sa.bindparam("new"))
    last = 0
    while True:
        rows = connection.execute(
            sa.select(packages.c.id, packages.c.filename, packages.c.sha256)
            .where(packages.c.id > last)
            .order_by(packages.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            update, [{"row_id": id_, "new": package_uuid(filename, sha256)} for id_, filename, sha256 in rows]
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.drop_constraint(op.f("uq_packages_uuid"), type_="unique")
        batch.drop_column("uuid")
    for table in ("repositories", "remotes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("labels")
