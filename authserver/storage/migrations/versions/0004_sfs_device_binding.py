"""Bind each ns account to the SFS app instance that vouched for it at enrolment.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Existing accounts get NULL: nobody knows which instance vouched for them, and guessing (trusting the
first instance that attests next) is exactly what the binding forbids. ns refuses them with
``reenrol_required`` wherever a second factor is needed; they are listed with
``second_factor_bound: false`` on the REST API.

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ns_accounts") as batch:
        batch.add_column(sa.Column("sfs_device", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ns_accounts") as batch:
        batch.drop_column("sfs_device")
