"""When an MC mailbox was first used (fetched by its app, or written to by ns): mailboxes never used are
purged after a documented time (NEXTAUTH_MC_UNUSED_MAILBOX_DAYS).

Mailboxes that exist before this revision count as used since their creation: nothing can say whether
they were, and forgetting a mailbox an enrolled account relies on would silently end its pushes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("mc_mailboxes", sa.Column("used_at", UTC_DATETIME, nullable=True))
    mailboxes = sa.table(
        "mc_mailboxes", sa.column("used_at", UTC_DATETIME), sa.column("created_at", UTC_DATETIME)
    )
    op.execute(mailboxes.update().values(used_at=mailboxes.c.created_at))


def downgrade() -> None:
    with op.batch_alter_table("mc_mailboxes") as batch:
        batch.drop_column("used_at")
